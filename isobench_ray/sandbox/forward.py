"""Forward named TCP ports of the host's loopback into a sandbox's network namespace, and nothing else.

An agent whose configuration names a model endpoint on this machine (`api_base: http://127.0.0.1:8000`)
reaches that port, and only that one: the sandbox's network never reaches the host otherwise. A child of
this process enters the namespace (of the process PID: the sandbox's holder, or a container's init; first
its user namespace where that is needed), listens on 127.0.0.1:PORT there and hands the listening sockets
back over a unix socket pair; this process, still in the host's namespace, accepts on them and connects
each connection to the host's 127.0.0.1:PORT. It prints `ready` (or `error ...`) and runs until its stdin
closes (the harness holds the other end). Standard library only.

    python3 -I forward.py PID net|user PORT [PORT ...]
"""

import ctypes
import os
import socket
import sys
import threading

CLONE_NEWNET, CLONE_NEWUSER = 0x40000000, 0x10000000


def _setns(path: str, kind: int) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(fd, kind) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), path)
    finally:
        os.close(fd)


def listeners(pid: int, enter_user: bool, ports: list[int]) -> list[socket.socket]:
    """Sockets listening on 127.0.0.1:PORT inside the namespace of `pid` (made by a child that entered it)."""
    here, there = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    child = os.fork()
    if child == 0:
        try:
            if enter_user:
                _setns(f"/proc/{pid}/ns/user", CLONE_NEWUSER)
            _setns(f"/proc/{pid}/ns/net", CLONE_NEWNET)
            made = []
            for port in ports:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("127.0.0.1", port))
                sock.listen(64)
                made.append(sock)
            socket.send_fds(there, [b"ok"], [s.fileno() for s in made])
            os._exit(0)
        except BaseException as exc:  # noqa: BLE001 - the parent reports it
            there.sendall(f"error {exc}".encode())
            os._exit(1)
    message, fds, _, _ = socket.recv_fds(here, 4096, len(ports))
    os.waitpid(child, 0)
    if message != b"ok":
        raise OSError(message.decode(errors="replace") or "the namespace's child said nothing")
    return [socket.socket(fileno=fd) for fd in fds]


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _serve(listener: socket.socket, port: int) -> None:
    while True:
        inside, _ = listener.accept()
        try:
            host = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            inside.close()
            continue
        host.settimeout(None)
        for a, b in ((inside, host), (host, inside)):
            threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def main(args: list[str]) -> int:
    pid, mode, ports = int(args[0]), args[1], [int(p) for p in args[2:]]
    try:
        socks = listeners(pid, mode == "user", ports)
    except OSError as exc:
        print(f"error {exc}", flush=True)
        return 1
    for sock, port in zip(socks, ports):
        threading.Thread(target=_serve, args=(sock, port), daemon=True).start()
    print("ready", flush=True)
    sys.stdin.read()  # until the harness closes it
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
