"""Network for a bubblewrap sandbox that asks for it: its own namespace, egress through slirp4netns, never the host.

`network=True` means the outside world, not this machine: the sandbox gets a network namespace of its own
(so 127.0.0.1 is its own loopback, where its servers and clients talk), and slirp4netns carries its
connections out as ordinary sockets of the harness, with `--disable-host-loopback` (10.0.2.2, the
gateway, never leads to the host's 127.0.0.1). The host's own addresses (every interface's, the Docker
bridges' included) and link-local 169.254.0.0/16 (cloud metadata) get `prohibit` routes inside the
namespace before the command starts (routes.py); the command holds no capability to remove them. What is
left: the Internet and the other machines of the local network, where a Ray cluster's ports ask for the
cluster's token (docs/security.md). One exception, named by the user: the port of an agent's own model
endpoint on this host's loopback (its `api_base`), forwarded to the sandbox's 127.0.0.1 (forward.py).

The namespace is the sandbox's, shared by its launches, held by a trivial process (`Namespace`).
"""

from __future__ import annotations

import ipaddress
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from isobench_ray.sandbox.base import SandboxUnavailable

INSTALL_HINT = ("bubblewrap sandboxes with network need slirp4netns (apt-get install slirp4netns) and nsenter "
                "(util-linux)")
RESOLV = b"nameserver 10.0.2.3\n"  # slirp4netns's DNS forwarder, inside the namespace
ROUTES = Path(__file__).with_name("routes.py")
FORWARD = Path(__file__).with_name("forward.py")


def missing() -> str:
    """'' when user-mode networking can be had here, else what to install."""
    return "" if shutil.which("slirp4netns") and shutil.which("nsenter") else INSTALL_HINT


def blocked_destinations() -> list[str]:
    """The host's own addresses (every interface but loopback, which the namespace has of its own) and
    link-local: what a sandbox's egress must never reach."""
    found = {"169.254.0.0/16"}
    for addresses in psutil.net_if_addrs().values():
        for addr in addresses:
            if addr.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            try:
                ip = ipaddress.ip_address(addr.address.split("%")[0])
            except ValueError:
                continue
            if not ip.is_loopback and not ip.is_link_local:
                found.add(f"{ip}/{ip.max_prefixlen}")
    return sorted(found)


def loopback_ports(endpoints) -> list[int]:
    """The ports of the host's loopback that endpoint URLs name (`http://127.0.0.1:8000/v1`: 8000); an endpoint
    elsewhere needs nothing (it is the outside)."""
    from urllib.parse import urlsplit

    ports = set()
    for url in endpoints:
        parts = urlsplit(url if "//" in url else f"//{url}")
        try:
            loop = parts.hostname == "localhost" or ipaddress.ip_address(parts.hostname or "").is_loopback
        except ValueError:
            loop = False
        if loop:
            ports.add(parts.port or (443 if parts.scheme == "https" else 80))
    return sorted(ports)


class Forwarder:
    """forward.py for one namespace: the host's loopback `ports` at the namespace's 127.0.0.1, nothing else."""

    def __init__(self, pid: int, ports: list[int], enter_user: bool):
        self.proc = subprocess.Popen([sys.executable, "-I", str(FORWARD), str(pid), "user" if enter_user else "net",
                                      *map(str, ports)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        ready = select.select([self.proc.stdout], [], [], 30)[0]
        line = self.proc.stdout.readline().strip() if ready else "no answer in 30 s"
        if line != "ready":
            self.close()
            raise SandboxUnavailable(f"cannot give the sandbox the endpoint port(s) {ports} of this host: {line}")

    def close(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()  # it ends when its stdin does
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


class Namespace:
    """The network namespace of one sandbox, shared by all its launches (a server and its client talk over
    its loopback, the HTTP probe runs there): held by a trivial process (`cat` on a pipe the harness holds,
    so it ends with the harness), with slirp4netns attached when the sandbox has network. `enter()` is the
    argv prefix that puts a launch in it; `close()` ends it."""

    def __init__(self, bwrap: str, network: bool, env: dict[str, str], host_ports: list[int] = ()):
        self.slirp: subprocess.Popen | None = None
        self.forwarder: Forwarder | None = None
        self._exit_w = -1
        hold_r, self._hold_w = os.pipe()
        self.holder = subprocess.Popen([bwrap, "--unshare-user", "--unshare-net", "--ro-bind", "/", "/", "--", "cat"],
                                       stdin=hold_r, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                                       start_new_session=True)
        os.close(hold_r)
        try:
            self._wait_for_holder()
            if network:
                self._attach(env)
                self._block()
                if host_ports:  # the agent's own endpoint on this host, named in its configuration
                    self.forwarder = Forwarder(self.pid, list(host_ports), os.geteuid() != 0)
        except BaseException:
            self.close()
            raise

    def _wait_for_holder(self) -> None:
        """Until the holder is inside its namespaces (its user map written)."""
        own = os.readlink("/proc/self/ns/net")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.holder.poll() is not None:
                raise SandboxUnavailable("bubblewrap could not make a network namespace here")
            try:
                children = psutil.Process(self.holder.pid).children()
                if children and os.readlink(f"/proc/{children[0].pid}/ns/net") != own and \
                        Path(f"/proc/{children[0].pid}/uid_map").read_text().strip():
                    self.pid = children[0].pid
                    return
            except (psutil.NoSuchProcess, OSError):
                pass
            time.sleep(0.01)
        raise SandboxUnavailable("bubblewrap's network namespace did not come up in 30 s")

    def enter(self) -> list[str]:
        args = ["nsenter", f"--net=/proc/{self.pid}/ns/net"]
        if os.geteuid() != 0:  # the namespace belongs to the holder's user namespace: enter that first
            args += [f"--user=/proc/{self.pid}/ns/user", "--preserve-credentials"]
        return [*args, "--"]

    def _attach(self, env: dict[str, str]) -> None:
        for attempt in range(5):
            error = self._start(env)
            if not error:
                return
            time.sleep(0.05 * (attempt + 1))
        raise SandboxUnavailable(f"slirp4netns could not attach to the sandbox's network: {error}")

    def _start(self, env: dict[str, str]) -> str:
        ready_r, ready_w = os.pipe()
        exit_r, self._exit_w = os.pipe()
        argv = ["slirp4netns", "--configure", "--mtu=65520", "--disable-host-loopback", f"--ready-fd={ready_w}",
                f"--exit-fd={exit_r}", "--netns-type=path"]
        if os.geteuid() != 0:
            argv.append(f"--userns-path=/proc/{self.pid}/ns/user")
        argv += [f"/proc/{self.pid}/ns/net", "tap0"]
        with tempfile.TemporaryFile() as log:  # its chatter (a file: a pipe nobody reads would fill)
            self.slirp = subprocess.Popen(argv, pass_fds=(ready_w, exit_r), env=env, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=log, start_new_session=True)
            return self._ready(ready_r, ready_w, exit_r, log)

    def _ready(self, ready_r: int, ready_w: int, exit_r: int, log) -> str:
        os.close(ready_w)
        os.close(exit_r)
        ready = os.read(ready_r, 1) if select.select([ready_r], [], [], 30)[0] else b""
        os.close(ready_r)
        if ready == b"1":
            return ""
        self.slirp.kill()
        self.slirp.wait()
        log.seek(0)
        error = log.read().decode(errors="replace").strip().splitlines()[-2:]
        os.close(self._exit_w)
        self.slirp, self._exit_w = None, -1
        return " / ".join(error) or "no reason given"

    def _block(self) -> None:
        done = subprocess.run([*self.enter(), sys.executable, "-I", str(ROUTES), *blocked_destinations()],
                              capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise SandboxUnavailable(f"cannot cut the host off the sandbox's network: {done.stderr.strip()[-500:]}")

    def close(self) -> None:
        if self.forwarder is not None:
            self.forwarder.close()
            self.forwarder = None
        if self._exit_w >= 0:
            os.close(self._exit_w)  # slirp4netns exits when its exit pipe closes
            self._exit_w = -1
        if self._hold_w >= 0:
            os.close(self._hold_w)  # and the holder when its stdin does
            self._hold_w = -1
        for proc in (self.slirp, self.holder):
            if proc is None:
                continue
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.slirp = None
