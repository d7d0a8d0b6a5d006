"""A real Docker engine for the tests: a private `dockerd` for the session, and the base image on it.

`docker_host` starts `dockerd` with its own data root, exec root, pid file and unix socket under
/tmp/isobench-dockerd-XXXX (overlay2 first; then without iptables and the bridge; then the vfs driver),
waits for it with the SDK's ping and stops it at the end of the session. ISOBENCH_TEST_DOCKER_HOST reuses
a running engine instead (e.g. unix:///var/run/docker.sock). `docker_image` imports the base image,
built once by the package's scripts/build_base.sh (debootstrap; `isobench images build` does the same)
and cached under ~/.cache/isobench/images/ keyed by the script's content. Where any of that cannot happen
here (no dockerd, not root, no cgroups, no debootstrap, no Debian mirror) the tests that use them skip with
the reason; they never fail for the machine.

A test module that uses them says `pytest_plugins = ["dockerd"]`: registered once as a plugin, the
session fixtures are one engine for every module (imported into each module they would be one each).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from isobench_ray.config import BASE_IMAGE, DEFAULT_CACHE_DIR

ENV_HOST = "ISOBENCH_TEST_DOCKER_HOST"
IMAGE = BASE_IMAGE
# tried in order until one answers a ping
DAEMON_OPTIONS = (
    ["--storage-driver=overlay2"],
    ["--storage-driver=overlay2", "--iptables=false", "--ip-masq=false", "--bridge=none"],
    ["--storage-driver=vfs", "--iptables=false", "--ip-masq=false", "--bridge=none"],
)


def _ping(url: str, timeout_s: float) -> str:
    """'' once the engine answers, else the last error."""
    import docker

    deadline, error = time.monotonic() + timeout_s, "no answer"
    while time.monotonic() < deadline:
        try:
            client = docker.DockerClient(base_url=url, timeout=10)
            try:
                client.ping()
                return ""
            finally:
                client.close()
        except Exception as exc:
            error = str(exc)
            time.sleep(0.3)
    return error


def _remove_all(url: str) -> list[str]:
    """Force-remove every container (a stop would wait for each), then the networks made (the sandbox's own
    bridge: the engine deletes its interface and firewall rules, which a stopped engine would leave on the
    host); returns the names of the containers left."""
    import docker

    client = docker.DockerClient(base_url=url, timeout=60)
    try:
        names = []
        for container in client.containers.list(all=True):
            names.append(container.name)
            try:
                container.remove(force=True)
            except docker.errors.APIError:
                pass
        try:
            client.networks.prune()
        except docker.errors.APIError:
            pass
        return names
    except Exception:
        return []
    finally:
        client.close()


def _smoke(url: str, root: Path) -> str:
    """'' when the engine runs a container (a one-file image of the static tini), else why not."""
    import io
    import tarfile

    import docker

    tini = Path("/usr/bin/tini-static")
    if not tini.exists():
        return ""  # nothing static to run: the image's own tests will tell
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(tini, arcname="tini")
    client = docker.DockerClient(base_url=url, timeout=60)
    try:
        client.api.import_image_from_data(buf.getvalue(), repository="isobench-smoke", tag="1")
        out = client.containers.run("isobench-smoke:1", ["/tini", "--version"], remove=True, network_mode="none")
        return "" if b"tini" in out else f"the smoke container said {out[:200]!r}"
    except Exception as exc:
        return f"cannot run a container: {str(exc)[:500]}"
    finally:
        try:
            client.images.remove("isobench-smoke:1", force=True)
        except Exception:
            pass
        client.close()


def _stop(proc: subprocess.Popen, root: Path) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # dockerd stops its containers and its containerd
        try:
            proc.wait(timeout=10)  # it waits on containerd; nothing runs any more
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    # a killed daemon may leave its overlay mounts behind
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines() if str(root) in line.split()[1]]
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def docker_host():
    """The URL of a Docker engine for this session (skips the test with the reason when there is none)."""
    pytest.importorskip("docker", reason="the docker Python package is not installed")
    if os.environ.get(ENV_HOST):
        url = os.environ[ENV_HOST]
        error = _ping(url, 10)
        if error:
            pytest.skip(f"{ENV_HOST}={url} does not answer: {error}")
        yield url
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        pytest.skip("dockerd is not installed (apt-get install docker.io)")
    if os.geteuid() != 0:
        pytest.skip("dockerd needs root here (or set ISOBENCH_TEST_DOCKER_HOST to a running engine)")
    if not Path("/sys/fs/cgroup").is_dir() or not any(Path("/sys/fs/cgroup").iterdir()):
        pytest.skip("no cgroup file system: dockerd cannot run containers here")
    failures = []
    for options in DAEMON_OPTIONS:
        root = Path(tempfile.mkdtemp(prefix="isobench-dockerd-", dir="/tmp"))  # short: a socket path has 107 bytes
        url = f"unix://{root}/docker.sock"
        log = open(root / "dockerd.log", "wb")
        proc = subprocess.Popen(
            [dockerd, "--data-root", str(root / "data"), "--exec-root", str(root / "exec"), "--pidfile", str(root / "docker.pid"),
             "-H", url, "--userland-proxy=false", *options],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        error = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                error = f"dockerd exited with {proc.returncode}"
                break
            error = _ping(url, 1)
            if not error:
                break
        if not error:
            error = _smoke(url, root)  # answering is not running: a storage driver may fail only now
        if not error:
            try:
                yield url
            finally:
                leftovers = _remove_all(url)
                if leftovers:
                    print(f"\ndockerd: containers left at the end of the session: {', '.join(leftovers)}")
                log.close()
                _stop(proc, root)
            return
        log.close()
        tail = (root / "dockerd.log").read_text(errors="replace").strip().splitlines()[-3:]
        failures.append(f"{' '.join(options)}: {error}; {' / '.join(tail)}")
        _stop(proc, root)
    pytest.skip("dockerd would not start here: " + " | ".join(failures))


@pytest.fixture(scope="session")
def docker_image(docker_host):
    """The base image on the session's engine: imported from the cached tarball, built first where needed."""
    import docker

    from isobench_ray.sandbox.docker.images import base_tarball_path, ensure_base_image

    client = docker.DockerClient(base_url=docker_host, timeout=600)
    cache = Path(os.environ.get("ISOBENCH_TEST_IMAGE_CACHE", DEFAULT_CACHE_DIR))
    cached = base_tarball_path(cache).exists()
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        if not cached and (shutil.which("debootstrap") is None or os.geteuid() != 0):
            pytest.skip("no base image: building it needs root and debootstrap (apt-get install debootstrap)")
        started = time.monotonic()
        try:
            how = ensure_base_image(client, IMAGE, cache)
        except Exception as exc:
            pytest.skip(f"the base image could not be built here: {str(exc)[-1500:]}")
        print(f"\n{IMAGE}: {how} in {time.monotonic() - started:.0f} s")
    finally:
        client.close()
    return IMAGE


@pytest.fixture(scope="session")
def docker_sandboxes(docker_host, docker_image):
    """The Docker sandbox factory on the session's engine (a small /dev/shm and a ten-minute limit)."""
    from isobench_ray.sandbox.docker import DockerSandboxes

    return DockerSandboxes(host=docker_host, image=docker_image, shm_size="64m", time_limit_s=600)


# A driver that makes one session container and is then killed (tests/test_hostile.py, case 9): argv engine,
# image, cache folder, ttl margin; prints the container's name and its own process id, then waits.
_DRIVER = """
import os, sys, time
from pathlib import Path
from isobench_ray.sandbox.docker import DockerSandboxes
factory = DockerSandboxes(host=sys.argv[1], image=sys.argv[2], cache_dir=sys.argv[3], ttl_margin_s=float(sys.argv[4]),
                          run="case9-run", shm_size="64m")
box = factory("case9.0.abc", writable=[sys.argv[3]], network=False)
box.start("sleep 900", cwd=Path(sys.argv[3]), log_path=Path(sys.argv[3], "server.log"))
print(box.name, factory.driver, flush=True)
time.sleep(900)
"""


def killed_driver(host: str, image: str, folder: Path, margin_s: float) -> tuple[str, str, int]:
    """A driver process that made a session container, killed with SIGKILL: (container name, the driver's
    `host/pid/start` as its factory recorded it, its pid)."""
    driver = subprocess.Popen([sys.executable, "-c", _DRIVER, host, image, str(folder), str(margin_s)], stdout=subprocess.PIPE,
                              text=True)
    name, ident = driver.stdout.readline().split()
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    return name, ident, driver.pid

# Forks up to argv[1] sleeping children for 5 s at most (a fork bomb with a count), prints how many it got.
FORK_BOMB = """
import os, sys, time
kids, start = [], time.monotonic()
while len(kids) < int(sys.argv[1]) and time.monotonic() - start < 5:
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    kids.append(pid)
print(len(kids), flush=True)
for pid in kids:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
"""
