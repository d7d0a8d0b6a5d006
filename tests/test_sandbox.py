"""The local sandbox: real processes. A time limit leaves nothing behind; isolation holds where bwrap exists."""

import os
import shutil
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from isobench_ray.sandbox import LocalSandbox, reap_tagged


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        return open(f"/proc/{pid}/stat").read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_exec_reports_output_and_exit_code(tmp_path):
    res = LocalSandbox("t-exec").exec("echo out; echo err >&2; exit 3", cwd=tmp_path, timeout_s=10)
    assert res.returncode == 3 and not res.timed_out
    assert "out" in res.output and "err" in res.output


def test_timeout_kills_the_whole_tree_including_escaped_children(tmp_path):
    script = "setsid sleep 300 & echo $! > escaped.pid; sleep 300 & echo $! > child.pid; sleep 300"
    start = time.monotonic()
    res = LocalSandbox("t-timeout").exec(script, cwd=tmp_path, timeout_s=1.5)
    assert res.timed_out and res.returncode is None
    assert time.monotonic() - start < 15
    time.sleep(0.2)
    for name in ("escaped.pid", "child.pid"):
        pid = int((tmp_path / name).read_text())
        assert not _alive(pid), f"{name} survived the time limit"


def test_started_process_stops_with_its_group(tmp_path):
    proc = LocalSandbox("t-start").start("sleep 300 & echo $! > kid.pid; sleep 300", cwd=tmp_path, log_path=tmp_path / "log")
    time.sleep(0.5)
    assert proc.poll() is None
    kid = int((tmp_path / "kid.pid").read_text())
    proc.stop(grace_s=1)
    time.sleep(0.2)
    assert proc.poll() is not None and not _alive(kid)


def test_reap_tagged_finds_orphans_by_environment(tmp_path):
    sandbox = LocalSandbox("t-reap-orphans")
    proc = sandbox.start("setsid sleep 300 & echo $! > o.pid; wait", cwd=tmp_path, log_path=tmp_path / "log")
    time.sleep(0.5)
    orphan = int((tmp_path / "o.pid").read_text())
    os.killpg(proc.popen.pid, 9)  # the parent dies hard; the setsid child is not in its group
    time.sleep(0.2)
    assert _alive(orphan)
    assert orphan in reap_tagged("t-reap-orphans")
    time.sleep(0.2)
    assert not _alive(orphan)


needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")


@needs_bwrap
def test_isolated_session_writes_only_its_tree(tmp_path):
    tree, outside = tmp_path / "tree", tmp_path / "outside"
    tree.mkdir(), outside.mkdir()
    sandbox = LocalSandbox("t-iso", isolate=True, network=False, writable=[tree])
    assert sandbox.isolated
    res = sandbox.exec(f"echo ok > inside.txt && echo no > {outside}/x.txt", cwd=tree, timeout_s=20)
    assert (tree / "inside.txt").read_text().strip() == "ok"
    assert res.returncode != 0 and not (outside / "x.txt").exists()


@needs_bwrap
def test_isolated_session_has_no_network_unless_asked(tmp_path):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"hello")

        def log_message(self, *a):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    fetch = f"python -c \"import urllib.request; print(urllib.request.urlopen('{url}', timeout=3).read())\""
    try:
        closed = LocalSandbox("t-net0", isolate=True, network=False, writable=[tmp_path]).exec(fetch, cwd=tmp_path, timeout_s=20)
        opened = LocalSandbox("t-net1", isolate=True, network=True, writable=[tmp_path]).exec(fetch, cwd=tmp_path, timeout_s=20)
    finally:
        server.shutdown()
    assert closed.returncode != 0
    assert opened.returncode == 0 and "hello" in opened.output
