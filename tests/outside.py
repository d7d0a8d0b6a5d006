"""Network fixtures for the sandbox promises: the outside world, and the host's own listeners.

`outside_server` stands in for the Internet: an HTTP server in a network namespace of its own, behind a veth
pair with addresses from 198.18.0.0/15 (the benchmarking range: on no real network), so a sandbox's egress
reaches it the way it reaches a model endpoint (bubblewrap through slirp4netns, Docker through its bridge's
NAT), while it is none of the host's addresses. It needs root and iproute2 (`.ci/run` runs as root); where
it cannot be made, the tests that use it fail with the reason rather than skip: a network promise untested
is not kept.

`host_addresses()` lists every address of this machine (loopback, the LAN's, the Docker bridges'): what a
sandbox with network must never reach. `ray_head` is a real Ray head on this machine with its dashboard and
its dashboard agent's job API, without authentication (so the network alone is what keeps a sandbox off
it), started with `ray start --block` in a session of its own and stopped by signalling that session only
(never `ray stop`, which would stop every Ray process of the machine).

A test module that uses them says `pytest_plugins = ["outside"]`.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

OUTSIDE_REPLY = "hello from the outside"

_SERVER = f"""
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"{OUTSIDE_REPLY}"
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
"""


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True)


@pytest.fixture(scope="session")
def outside_server():
    """The URL of an HTTP server on 'the outside' (its own network namespace, routed from the host)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.fail("the outside stand-in needs root and iproute2 (ip): the network promises cannot be checked here")
    n = os.getpid() % 16000
    net = ipaddress.ip_network("198.18.0.0/15").network_address + 4 * n
    host_ip, far_ip = net + 1, net + 2
    ns, veth, peer = f"isobench-out-{os.getpid()}", f"ibo{n}a", f"ibo{n}b"
    steps = [("netns", "add", ns), ("link", "add", veth, "type", "veth", "peer", "name", peer),
             ("link", "set", peer, "netns", ns), ("addr", "add", f"{host_ip}/30", "dev", veth), ("link", "set", veth, "up"),
             ("-n", ns, "addr", "add", f"{far_ip}/30", "dev", peer), ("-n", ns, "link", "set", peer, "up"),
             ("-n", ns, "link", "set", "lo", "up"), ("-n", ns, "route", "add", "default", "via", str(host_ip))]
    server = None
    try:
        for step in steps:
            done = _ip(*step)
            if done.returncode != 0:
                pytest.fail(f"ip {' '.join(step)}: {done.stderr.strip()}")
        server = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-I", "-c", _SERVER, str(far_ip), "8080"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection((str(far_ip), 8080), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://{far_ip}:8080/"
    finally:
        if server is not None:
            server.kill()
            server.wait()
        _ip("link", "del", veth)
        _ip("netns", "del", ns)


def host_addresses() -> dict[str, str]:
    """Every IPv4 address of this machine by interface: loopback, the LAN's, the Docker bridges'."""
    found = {}
    for name, addresses in psutil.net_if_addrs().items():
        for addr in addresses:
            if addr.family == socket.AF_INET and not addr.address.startswith("198.18.") \
                    and not addr.address.startswith("198.19."):
                found[f"{name} {addr.address}"] = addr.address
    return found


# a hostile agent's job submission: Ray's job API on the dashboard and on the dashboard agent, its GCS; what it reached
RAY_ATTACK = """
import json, os, socket, urllib.request
seen, entry = {}, "id > " + os.environ["MARKER"]
for url in os.environ["URLS"].split():
    try:
        if url.startswith("tcp://"):
            host, port = url[6:].rsplit(":", 1)
            socket.create_connection((host, int(port)), timeout=3).close()
            seen[url] = "connected"
            continue
        body = json.dumps({"entrypoint": entry, "submission_id": "pwn-" + str(abs(hash(url)))}).encode()
        request = urllib.request.Request(url, body, {"Content-Type": "application/json"}, method="POST")
        seen[url] = urllib.request.urlopen(request, timeout=5).status
    except urllib.error.HTTPError as exc:
        seen[url] = exc.code
    except OSError as exc:
        seen[url] = type(exc).__name__
print(json.dumps(seen))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head on this machine, unauthenticated, with its dashboard (the job API) on 127.0.0.1 and its
    dashboard agent's job API on the node's address and 127.0.0.1: {"dashboard", "agent", "gcs", "node_ip"}
    (its ports and address), with "attack" (RAY_ATTACK) and "answers" (whether a URL answers from here)."""
    ports = {"dashboard": _free_port(), "agent": _free_port(), "gcs": _free_port(), "client": _free_port()}
    temp = tempfile.mkdtemp(prefix="rh", dir="/tmp")  # Ray's socket paths must stay short
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_ADDRESS": "", "RAY_USAGE_STATS_ENABLED": "0"}
    ray = Path(sys.executable).parent / "ray"
    log = open(Path(temp) / "head.log", "wb")
    head = subprocess.Popen([str(ray), "start", "--head", "--block", f"--port={ports['gcs']}", "--num-cpus=1",
                             "--include-dashboard=true", f"--dashboard-port={ports['dashboard']}",
                             f"--dashboard-agent-listen-port={ports['agent']}", f"--ray-client-server-port={ports['client']}",
                             f"--temp-dir={temp}", "--disable-usage-stats"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not (_answers(f"http://127.0.0.1:{ports['dashboard']}/api/version")
                   and _answers(f"http://127.0.0.1:{ports['agent']}/api/local_raylet_healthz")):
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Ray head did not come up: {(Path(temp) / 'head.log').read_text()[-2000:]}")
            time.sleep(0.5)
        node_ip = next((c.laddr.ip for c in psutil.net_connections("tcp") if c.laddr.port == ports["agent"]
                        and c.status == "LISTEN" and not c.laddr.ip.startswith("127.")), "127.0.0.1")
        yield {**ports, "node_ip": node_ip, "attack": RAY_ATTACK, "answers": _answers}
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # `ray start --block` stops what it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        for proc in psutil.process_iter(["cmdline"]):  # this head's own leftovers, found by its temp dir
            if any(temp in part for part in proc.info["cmdline"] or ()):
                proc.kill()
        log.close()
        shutil.rmtree(temp, ignore_errors=True)
