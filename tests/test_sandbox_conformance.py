"""One conformance suite for every sandbox implementation present: the promises of sandbox/base.py.

Each promise runs for real (real processes, real HTTP on 127.0.0.1) against each implementation; a
promise an implementation does not make (plain local processes cannot cut the network) is declared in
IMPLEMENTATIONS (`lacks`) and its test is a strict xfail: it must fail there, so an implementation that
starts keeping the promise fails the suite until the declaration is brought up to date. The session
stage never gives such a sandbox to an agent that runs code.

The boundaries (docs/security.md) are promises like the others, each replayed as a hostile command would
try it: no privilege (no mount, umount or remount, no capability), no write outside the writable paths even
as root, none of the harness's files (its caches and mirrors, its checkout, /etc/shadow, its unix
sockets), no fork past the pids limit, and a network that reaches the outside (tests/outside.py: a server
in a namespace of its own) but never the host, on any of its addresses. Run against the plain local
sandbox, the hostile commands are only the harmless ones (a capability read, forks under a count).

Commands say `python`, never the harness's interpreter: the local sandbox puts the harness's first on
PATH, and a container has the image's own (the host's virtualenv is not there). The Docker implementation
runs against a private dockerd started for the session (tests/dockerd.py) and skips with the reason where
none can run.
"""

import dataclasses
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import psutil
import pytest
from dockerd import FORK_BOMB

from isobench_ray.sandbox import SandboxUnavailable
from isobench_ray.sandbox.base import with_agent
from isobench_ray.sandbox.local import LocalSandbox, LocalSandboxes

# docker_host, docker_image, docker_sandboxes: one dockerd for the whole session; outside_server: the Internet
pytest_plugins = ["dockerd", "outside"]

PIDS = 64  # the pids limit of every sandbox in this suite
HARNESS = Path.home() / ".cache" / f"isobench-conformance-{os.getpid()}"  # the harness's cache, as a run hides it
CHECKOUT = Path(__file__).resolve().parents[1]  # the harness's own checkout
LOCAL_LACKS = {"network", "writable_paths", "no_privilege", "harness_files", "pids", "no_host", "unmarked_daemon"}

IMPLEMENTATIONS = [
    # lacks: the promises this implementation does not make (their tests must fail on it: strict xfail)
    pytest.param(dict(factory=LocalSandboxes(pids_limit=PIDS, hidden=(str(HARNESS),)), isolate=False, lacks=LOCAL_LACKS),
                 id="local"),
    pytest.param(dict(factory=LocalSandboxes(pids_limit=PIDS, hidden=(str(HARNESS),)), isolate=True), id="bwrap",
                 marks=pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")),
    pytest.param(dict(fixture="docker_sandboxes", isolate=True), id="docker",  # skips where no dockerd can run
                 marks=[pytest.mark.docker, pytest.mark.slow]),  # a private dockerd to start: not in make test-fast
]


@pytest.fixture(params=IMPLEMENTATIONS)
def make(request, tmp_path):
    impl = request.param
    factory = impl["factory"] if "factory" in impl else request.getfixturevalue(impl["fixture"])
    if dataclasses.is_dataclass(factory) and "fixture" in impl:
        factory = dataclasses.replace(factory, pids_limit=PIDS)
    made = []

    def _make(tag="conf", network=False, env=None, endpoints=()):
        sandbox = with_agent(factory, endpoints=endpoints)(f"{tag}-{request.node.name}", writable=[tmp_path],
                                                           network=network, isolate=impl["isolate"], env=env)
        made.append(sandbox)
        return sandbox

    _make.lacks = impl.get("lacks", set())
    yield _make
    for sandbox in made:
        sandbox.cleanup()


def _not_promised_fails(request, make, promise: str, reason: str) -> None:
    """Where the implementation does not make `promise`, the rest of the test must fail on its assertions
    (strict: an implementation that starts keeping it fails the suite)."""
    if promise in make.lacks:
        request.applymarker(pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason))


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _pids(path) -> list[int]:
    return [int(line) for line in path.read_text().split()]


def test_output_and_exit_codes_come_back(make, tmp_path):
    sandbox = make()
    res = sandbox.exec("echo out; echo err >&2; exit 3", cwd=tmp_path, timeout_s=20)
    assert res.returncode == 3 and not res.timed_out and not res.ok
    assert "out" in res.output and "err" in res.output
    argv = sandbox.exec(["python", "-c", "import sys; print('a b'); sys.exit(0)"], cwd=tmp_path, timeout_s=20)
    assert argv.ok and argv.output.strip() == "a b"  # an argv sees no shell


def test_a_timeout_kills_the_whole_tree_escaped_children_included(make, tmp_path):
    # an odd duration: no other process on the machine sleeps exactly this long
    # each of the three writes a line, then becomes the sleep (exec keeps the process): all three really ran
    ran = "echo ran >> ran; exec sleep 301.7"
    script = f"setsid sh -c '{ran}' & sh -c '{ran}' & {ran}"
    start = time.monotonic()
    res = make().exec(script, cwd=tmp_path, timeout_s=1.5)
    assert res.timed_out and res.returncode is None
    assert time.monotonic() - start < 15
    assert (tmp_path / "ran").read_text().split() == ["ran"] * 3  # the escaped child, the child and the command
    time.sleep(0.3)
    # by command line: inside a PID namespace a pid the command sees is not the host's
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "301.7"]]
    assert not leftovers, f"survived the time limit: {leftovers}"


def test_a_stopped_server_takes_its_children_with_it(make, tmp_path):
    sandbox = make(network=True)
    proc = sandbox.start("sleep 301 & sleep 301", cwd=tmp_path, log_path=tmp_path / "log")
    time.sleep(0.5)
    assert proc.poll() is None
    proc.stop(grace_s=1)
    time.sleep(0.3)
    assert proc.poll() is not None
    assert not [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "301"]]


# A server whose SIGTERM handler stops its own worker, as vLLM's and SGLang's do: stop() must give the
# leader that chance before the rest of the tree is signalled.
_SERVER = """
import signal, subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c", "import signal, time, pathlib\\n"
    "signal.signal(signal.SIGTERM, lambda *a: (pathlib.Path('worker-term').write_text('x'), exit(0)))\\n"
    "time.sleep(300)"])
def shutdown(*_):
    time.sleep(0.5)  # a worker signalled together with its leader has its file by now
    import os
    print("worker signalled before its leader" if os.path.exists("worker-term") else "leader first", flush=True)
    worker.terminate(); worker.wait(); sys.exit(0)
signal.signal(signal.SIGTERM, shutdown)
print("ready", flush=True)
time.sleep(300)
"""


def test_a_stopped_server_gets_its_signal_before_its_workers(make, tmp_path):
    sandbox = make(network=True)
    (tmp_path / "server.py").write_text(_SERVER)
    proc = sandbox.start("python server.py", cwd=tmp_path, log_path=tmp_path / "log")
    deadline = time.monotonic() + 20
    while "ready" not in proc.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)  # the worker's handler is installed
    proc.stop(grace_s=5)
    assert "leader first" in proc.output(), proc.output()
    assert (tmp_path / "worker-term").exists()  # and the leader stopped its worker itself


@pytest.mark.slow  # a server that burns a core for seconds, per implementation
def test_a_running_servers_cpu_time_is_counted(make, tmp_path):
    """Process.cpu_seconds: what the outside-load check subtracts as the server's own use of the slot."""
    sandbox = make(network=True)
    proc = sandbox.start("python -c 'import time\nt = time.time()\nwhile time.time() - t < 30: pass'", cwd=tmp_path,
                         log_path=tmp_path / "log")
    try:
        time.sleep(1.5)
        assert proc.cpu_seconds() > 0.5
    finally:
        proc.stop(grace_s=1)

def test_cleanup_reaps_an_escaped_setsid_child(make, tmp_path):
    sandbox = make(network=True)
    sleep = ["sleep", f"302.{os.getpid()}"]  # this run's own: no other process (another test run's) sleeps so long
    proc = sandbox.start(f"setsid {' '.join(sleep)} & wait", cwd=tmp_path, log_path=tmp_path / "log")
    deadline = time.monotonic() + 10
    while not [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == sleep] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == sleep], "the child never started"
    os.killpg(proc.popen.pid, 9) if isinstance(sandbox, LocalSandbox) else None  # the parent dies hard
    time.sleep(0.3)
    sandbox.cleanup()
    time.sleep(0.3)
    assert not [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == sleep]


def _running(argv: list[str]) -> list[int]:
    return [p.pid for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == argv and _alive(p.pid)]


def test_a_daemon_a_command_leaves_is_named_and_gone(make, tmp_path):
    """What a finished command left running (a daemon in its own session) is in `leftovers`, and killed: an
    arm's code never runs into the next arm (the import check of a patch that starts one is `tampering`)."""
    sandbox = make()
    daemon = ["sleep", f"303.{os.getpid()}"]
    res = sandbox.exec(f"setsid {' '.join(daemon)} > /dev/null 2>&1 & echo started", cwd=tmp_path, timeout_s=60)
    assert res.ok and "started" in res.output, res.output
    assert [left for left in res.leftovers if " ".join(daemon) in left], res.leftovers
    assert "isobench" not in res.output  # the watcher's lines are the harness's, not the command's output
    time.sleep(0.3)
    assert not _running(daemon)
    clean = sandbox.exec("sleep 0.2; echo done", cwd=tmp_path, timeout_s=60)
    assert clean.ok and clean.leftovers == () and clean.output.strip() == "done"


def test_reap_idle_kills_a_daemon_that_dropped_its_marker(make, tmp_path, request):
    """A daemon that cleared its environment (no marker to find it by) is gone once the sandbox is idle, the
    sandbox still usable: a bubblewrap launch's PID namespace ends with it, a container kills all but its own."""
    _not_promised_fails(request, make, "unmarked_daemon", "plain processes are found by their marker only")
    sandbox = make()
    daemon = ["sleep", f"304.{os.getpid()}"]
    start = sandbox.start(f"(env -i setsid {' '.join(daemon)} > /dev/null 2>&1 &); sleep 30", cwd=tmp_path,
                          log_path=tmp_path / "server.log")
    deadline = time.monotonic() + 10
    while not _running(daemon) and time.monotonic() < deadline:
        time.sleep(0.1)
    start.stop(grace_s=1)
    sandbox.reap_idle()
    time.sleep(0.5)
    try:
        assert not _running(daemon)
        assert sandbox.exec("echo still here", cwd=tmp_path, timeout_s=60).output.strip() == "still here"
    finally:
        for pid in _running(daemon):
            psutil.Process(pid).kill()


def test_only_the_given_environment_is_visible(make, tmp_path, monkeypatch):
    monkeypatch.setenv("ISOBENCH_TEST_SECRET", "hunter2")
    res = make(env={"GIVEN": "yes"}).exec("env", cwd=tmp_path, timeout_s=20)
    assert res.ok
    assert "GIVEN=yes" in res.output
    assert "hunter2" not in res.output and "ISOBENCH_TEST_SECRET" not in res.output


def _fetch(url: str) -> list[str]:
    return ["python", "-c", f"import urllib.request; print(urllib.request.urlopen('{url}', timeout=3).read())"]


def test_no_network_when_none_was_asked_for(make, tmp_path, http_server, outside_server, request):
    closed = make(network=False)
    assert closed.enforces_network == ("network" not in make.lacks)  # what it says of itself is what it does
    _not_promised_fails(request, make, "network", f"the {closed.kind} sandbox does not cut the network; "
                        "agents that run code never get it")
    assert not closed.exec(_fetch(http_server), cwd=tmp_path, timeout_s=20).ok
    assert not closed.exec(_fetch(outside_server), cwd=tmp_path, timeout_s=20).ok
    opened = make(tag="open", network=True).exec(_fetch(outside_server), cwd=tmp_path, timeout_s=20)
    assert opened.ok and "hello from the outside" in opened.output  # network: the outside world


def test_network_never_reaches_the_host_on_any_address(make, tmp_path, http_server, request):
    """`network=True` is egress to the outside: never the host's loopback (Ray's job API, its dashboard), nor
    its other addresses (the LAN's, the Docker bridges'), where the cluster's ports also listen."""
    from conftest import HelloHandler, serve
    from outside import host_addresses

    sandbox = make(network=True)
    _not_promised_fails(request, make, "no_host", "plain local processes share the host's network")
    with serve(HelloHandler, host="0.0.0.0") as everywhere:
        port = everywhere.server_address[1]
        for where, address in {"loopback server": http_server, **{k: f"http://{a}:{port}/" for k, a in host_addresses().items()}}.items():
            res = sandbox.exec(_fetch(address), cwd=tmp_path, timeout_s=20)
            assert not res.ok and "hello from the host" not in res.output, f"reached the host's {where}"
            assert "Traceback" in res.output  # the fetch ran, and the network refused it


def test_only_the_writable_paths_can_be_written(make, tmp_path, request):
    sandbox = make()
    _not_promised_fails(request, make, "writable_paths",
                        "plain local processes write wherever the user can; agents that run code never get them")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    res = sandbox.exec(f"echo ok > inside.txt && echo no > {outside}/x.txt", cwd=tmp_path, timeout_s=20)
    assert (tmp_path / "inside.txt").read_text().strip() == "ok"
    assert not res.ok and not (outside / "x.txt").exists()


def test_the_agents_own_endpoint_on_the_host_is_its_one_door(make, tmp_path, http_server, request):
    """An agent's configuration may name a model endpoint on this host's loopback (its api_base): that port
    is forwarded into the sandbox, and no other port of the host is reached."""
    from conftest import HelloHandler, serve

    sandbox = make(network=True, endpoints=[http_server])
    _not_promised_fails(request, make, "no_host", "plain local processes share the host's network")
    assert sandbox.exec(_fetch(http_server), cwd=tmp_path, timeout_s=20).output.count("hello from the host") == 1
    with serve(HelloHandler) as other:  # another port of the same loopback: a Ray port, a database
        res = sandbox.exec(_fetch(f"http://127.0.0.1:{other.server_address[1]}/"), cwd=tmp_path, timeout_s=20)
    assert not res.ok and "hello from the host" not in res.output


# what a hostile agent holding root tried (the "Real boundaries" issue, case 1): unmount the private /tmp to
# see the host's, remount the root read-write to write on the host, mount over a writable path
_ESCAPE = "umount -l /tmp; mount -o remount,rw,bind /; mount -o remount,rw /; mount -t tmpfs none {mnt}; echo pwned > {outside}/x"


def test_no_privilege_no_mount_no_remount(make, tmp_path, request):
    sandbox = make()
    _not_promised_fails(request, make, "no_privilege", "plain local processes keep the harness's privileges")
    caps = sandbox.exec("grep CapEff /proc/self/status", cwd=tmp_path, timeout_s=20)
    assert caps.ok and caps.output.split()[-1].strip("0") == "", caps.output  # not one capability
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (tmp_path / "mnt").mkdir()
    res = sandbox.exec(_ESCAPE.format(mnt=tmp_path / "mnt", outside=outside), cwd=tmp_path, timeout_s=30)
    assert res.output.count("mount") >= 4, res.output  # every command ran, and said why it failed
    assert not (outside / "x").exists()
    after = sandbox.exec("echo ok > mnt/probe; grep -c ' /tmp ' /proc/self/mounts", cwd=tmp_path, timeout_s=20)
    assert (tmp_path / "mnt" / "probe").exists(), after.output  # the writable path is still the host's, not a tmpfs


@pytest.fixture(scope="module")
def harness_files():
    """The harness's own files a sandbox must not read: a mirror in its cache, its checkout, /etc/shadow, a
    unix socket it listens on (in its cache and in the abstract namespace)."""
    mirror = HARNESS / "mirrors" / "repo.git"
    mirror.mkdir(parents=True, exist_ok=True)
    (mirror / "HEAD").write_text("the human commit: a secret of the harness\n")
    listeners = []
    for address in (str(HARNESS / "harness.sock"), f"\0isobench-conformance-{os.getpid()}"):
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(address)
        listener.listen(8)
        threading.Thread(target=lambda s=listener: [s.accept()[0].close() for _ in iter(int, 1)], daemon=True).start()
        listeners.append(listener)
    yield {"mirror": str(mirror / "HEAD"), "checkout": str(CHECKOUT / "pyproject.toml"), "shadow": "/etc/shadow",
           "socket": str(HARNESS / "harness.sock"), "abstract socket": f"@isobench-conformance-{os.getpid()}"}
    for listener in listeners:
        listener.close()
    shutil.rmtree(HARNESS, ignore_errors=True)


# each file's digest as the sandbox reads it (a container's own /etc/shadow is its image's, not the host's), or
# "connected" for a socket, or why not
_READ = """
import hashlib, json, socket, sys
seen = {}
for name, path in json.loads(sys.argv[1]).items():
    try:
        if "socket" in name:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path.replace("@", "\\0", 1))
            seen[name] = "connected"
        else:
            seen[name] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    except OSError as exc:
        seen[name] = type(exc).__name__
print(json.dumps(seen))
"""


def _digest(path: str) -> str:
    """What the sandbox would print had it read the harness's own file (or reached its socket)."""
    import hashlib

    if path.startswith("@") or path.endswith(".sock"):
        return "connected"
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:  # not even the harness reads it
        return "not readable here"


def test_the_harness_files_are_out_of_reach(make, tmp_path, harness_files, request):
    sandbox = make(network=True)
    _not_promised_fails(request, make, "harness_files", "plain local processes read what the harness's user can")
    res = sandbox.exec(["python", "-c", _READ, json.dumps(harness_files)], cwd=tmp_path, timeout_s=30)
    assert res.ok, res.output
    seen = json.loads(res.output.strip().splitlines()[-1])
    assert set(seen) == set(harness_files)  # every one was tried
    assert [name for name, path in harness_files.items() if seen[name] == _digest(path)] == [], seen


_FORK = FORK_BOMB  # forks up to argv[1] children (5 s at most), prints how many it got, reaps them


def test_no_fork_past_the_pids_limit(make, tmp_path, request):
    sandbox = make()
    _not_promised_fails(request, make, "pids", "plain local processes fork as many as the harness's user may")
    res = sandbox.exec(["python", "-c", _FORK, str(4 * PIDS)], cwd=tmp_path, timeout_s=60)
    assert res.ok, res.output
    forked = int(res.output.split()[-1])
    assert 0 < forked < PIDS, res.output  # stopped at the limit, the sandbox's own processes counted


def test_files_and_http_go_where_the_commands_run(make, tmp_path):
    sandbox = make(network=True)
    sandbox.write_file(tmp_path / "sub" / "f.txt", "data")
    assert sandbox.read_file(tmp_path / "sub" / "f.txt") == b"data"
    port = 20000 + os.getpid() % 20000
    proc = sandbox.start(["python", "-m", "http.server", str(port), "--bind", "127.0.0.1"], cwd=tmp_path,
                         log_path=tmp_path / "http.log")
    try:
        deadline = time.monotonic() + 20
        while sandbox.http_status(f"http://127.0.0.1:{port}/") != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sandbox.http_status(f"http://127.0.0.1:{port}/") == 200
    finally:
        proc.stop(grace_s=1)
    assert sandbox.http_status(f"http://127.0.0.1:{port}/", timeout_s=1) is None


def test_a_network_without_slirp4netns_is_refused_with_what_to_install(tmp_path, monkeypatch):
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "bwrap").symlink_to(shutil.which("bwrap"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # bubblewrap, but no slirp4netns
    with pytest.raises(SandboxUnavailable, match="apt-get install slirp4netns"):
        LocalSandboxes()("t", writable=[tmp_path], network=True, isolate=True)


def test_isolation_is_refused_not_dropped_where_it_cannot_run(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on this PATH
    assert not LocalSandboxes().can_isolate
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        LocalSandboxes()("t", writable=[tmp_path], network=False, isolate=True)
