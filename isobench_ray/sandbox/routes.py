"""Make destinations unreachable from the current network namespace: one `prohibit` route each.

Standard library only: the harness runs it inside a sandbox's network namespace before the sandbox's
command starts (bubblewrap: through nsenter; Docker: a privileged exec in the container, copied there with
the other helpers). The command itself holds no capability to remove the routes. A connection to a
blocked address fails at once with EACCES ("Permission denied"), whatever the port.

    python3 -I routes.py 192.0.2.2 172.17.0.1 169.254.0.0/16
"""

import errno
import ipaddress
import os
import socket
import struct
import sys

RTM_NEWROUTE, NLMSG_ERROR = 24, 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_PROHIBIT, RTA_DST = 254, 4, 0, 8, 1


def prohibit(sock: socket.socket, seq: int, net) -> None:
    family = socket.AF_INET if net.version == 4 else socket.AF_INET6
    dst = net.network_address.packed
    body = struct.pack("BBBBBBBBI", family, net.prefixlen, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_UNIVERSE,
                       RTN_PROHIBIT, 0) + struct.pack("HH", 4 + len(dst), RTA_DST) + dst
    flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    sock.send(struct.pack("IHHII", 16 + len(body), RTM_NEWROUTE, flags, seq, 0) + body)
    reply = sock.recv(65536)
    kind = struct.unpack("IHHII", reply[:16])[1]
    if kind == NLMSG_ERROR:
        code = -struct.unpack("i", reply[16:20])[0]
        if code not in (0, errno.EEXIST):
            raise OSError(code, f"{net}: {os.strerror(code)}")


def main(args: list[str]) -> int:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    sock.bind((0, 0))
    for seq, arg in enumerate(args, 1):
        net = ipaddress.ip_network(arg, strict=False)
        try:
            prohibit(sock, seq, net)
        except OSError as exc:
            if net.version == 6 and exc.errno in (errno.EAFNOSUPPORT, errno.ENETUNREACH, errno.EOPNOTSUPP):
                continue  # no IPv6 in this namespace: nothing to reach over it
            print(f"routes: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
