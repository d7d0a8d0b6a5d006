"""The Docker sandbox: one long-lived container per sandbox, driven through the Docker engine's API.

Each sandbox is a container whose PID 1 is `docker-init` running `sleep <docker_time_limit_s>`: when the
limit passes the engine itself stops the container and removes it (`auto_remove`), whoever is left to
watch. The writable paths are bind-mounted read-write at the same paths as on the host, so the paths in
commands and files work unchanged; the rest of the file system is the image's (`docker_image`), and
nothing else of the host is visible (`hide` is implicit). `network=False` is `network_mode="none"`: the
container has its own loopback only, so a server and its client in one container still talk, and the
HTTP probe runs inside the container for the same reason.

Every command runs under a small `sh` wrapper with `ISOBENCH_PROC` (one launch) in its environment:
stdout and stderr go to one pipe (interleaved as a person would see them), and when the command ends
(or the harness's time limit passes) every process of the container carrying that marker is killed,
children that started their own session included. The environment is the caller's plus a minimal base,
never the host's. A slot's GPUs (`CUDA_VISIBLE_DEVICES` in slot_env) become a device request for those
host devices, renumbered from 0 inside. Containers carry labels (`isobench.tag`, `isobench.slot`, ...)
so `cleanup` and `reap` find them.

`python -m isobench_ray.sandbox.docker build` builds the base image with debootstrap (images/build_base.sh)
and imports it; see docs/docker.md.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from isobench_ray.sandbox.base import OUTPUT_LIMIT, Command, ExecResult, ImageMissing, SandboxUnavailable, pinned_env

DEFAULT_IMAGE = "isobench-base:bookworm"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "images" / "build_base.sh"
# slot and tag variables (reap keys) and the labels that carry them
KEY_LABELS = {"ISOBENCH_TAG": "isobench.tag", "ISOBENCH_SLOT": "isobench.slot"}
STAGE_SUFFIXES = ("validate", "bench")  # tags of the validation and benchmark sandboxes end so
LABEL = "isobench"  # every container this module makes carries isobench=1

# Helper scripts, copied into every container under HELPERS (short command lines in `ps`).
HELPERS = "/.isobench"
# run.sh, the wrapper of every command: "$@" is the command. Its stderr carries only `times` (CPU of the
# waited children) for the harness; the command's stdout and stderr share the wrapper's stdout.
# `isobench_marked PID MARKER`: the process carries that launch's marker in its environment (every script's test)
_MARKED = r"""
isobench_marked() { tr '\0' '\n' < "/proc/$1/environ" 2>/dev/null | grep -qxF "ISOBENCH_PROC=$2"; }
"""
_REAP = _MARKED + r"""
isobench_reap() {
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = "$$" ] && continue
    isobench_marked "$p" "$ISOBENCH_PROC" && kill -KILL "$p" 2>/dev/null
  done
}
"""
_RUN = _REAP + r"""
"$@" 2>&1 </dev/null
rc=$?
times >&2
isobench_reap; isobench_reap
exit $rc
"""
# kill.sh: signal every process carrying a launch's marker: $1 signal, $2 marker, $3 `leader` to signal only
# the command itself (the wrapper's child; the wrapper is the marked process whose parent is not marked).
# Prints the pids.
_KILL = _MARKED + r"""
parent() { cut -d')' -f2- < "/proc/$1/stat" 2>/dev/null | cut -d' ' -f3; }
for d in /proc/[0-9]*; do
  p=${d#/proc/}
  [ "$p" = "$$" ] && continue
  isobench_marked "$p" "$2" || continue
  if [ "${3:-}" = leader ]; then
    w=$(parent "$p"); isobench_marked "$w" "$2" || continue
    isobench_marked "$(parent "$w")" "$2" && continue
  fi
  kill -"$1" "$p" 2>/dev/null && echo "$p"
done
"""
# cpu.sh: CPU ticks (user + system) of a launch's live processes: $1 marker.
_CPU = _MARKED + r"""
total=0
for d in /proc/[0-9]*; do
  isobench_marked "${d#/proc/}" "$1" || continue
  rest=$(cut -d')' -f2- < "$d/stat" 2>/dev/null) || continue
  set -- "$1" $rest
  total=$((total + ${13:-0} + ${14:-0}))
done
echo "$total"
"""
_HTTP = """
import sys, urllib.error, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    print(opener.open(sys.argv[1], timeout=float(sys.argv[2])).status)
except urllib.error.HTTPError as exc:
    print(exc.code)
except Exception:
    print("none")
"""

# probe_http.py: the HTTP status of a GET from inside ("none": nothing answered)
_SCRIPTS = {"run.sh": _RUN, "kill.sh": _KILL, "cpu.sh": _CPU, "probe_http.py": _HTTP}

_clients: dict[str, Any] = {}  # one client per engine URL and process (a factory only holds the URL)
_images_seen: set[tuple[str, str]] = set()
_lock = threading.Lock()


def default_host() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


_build_locks: dict[str, threading.Lock] = {}
RECIPE_LABEL = "isobench.recipe"  # what a built image was built from: Dockerfile template and build args


def recipe_key(dockerfile: Path, buildargs: dict[str, str]) -> str:
    text = Path(dockerfile).read_bytes() + "".join(f"\0{k}={v}" for k, v in sorted(buildargs.items())).encode()
    return hashlib.sha256(text).hexdigest()[:16]


def _building_lock(image: str) -> threading.Lock:
    """One build or pull of an image at a time in this process (two arms of one commit, two slots)."""
    with _lock:
        return _build_locks.setdefault(image, threading.Lock())


def client_for(base_url: str | None):
    """The engine's client, pinged once; SandboxUnavailable when it cannot be reached."""
    url = base_url or default_host()
    with _lock:
        if url in _clients:
            return _clients[url]
        try:
            import docker
        except ImportError:
            raise SandboxUnavailable("the docker sandbox needs the docker Python package (pip install docker)") from None
        try:
            client = docker.DockerClient(base_url=url, timeout=120)
            client.ping()
        except Exception as exc:
            raise SandboxUnavailable(f"cannot reach the Docker engine at {url}: {exc}") from None
        _clients[url] = client
        return client


def _safe_name(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", text).strip("-.") or "sandbox"


def _under(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == r or path.is_relative_to(r) for r in roots)


def _parse_times(text: str) -> float:
    """`times`: the shell's own user/system time, then its children's (`0m1.23s 0m0.10s`)."""
    lines = [line for line in text.splitlines() if "m" in line and "s" in line]
    if len(lines) < 2:
        return 0.0
    total = 0.0
    for minutes, seconds in re.findall(r"(\d+)m([\d.]+)s", lines[-1]):
        total += int(minutes) * 60 + float(seconds)
    return total


class DockerProcess:
    """A long-running command in the sandbox's container, logging to a file on this side."""

    def __init__(self, sandbox: "DockerSandbox", exec_id: str, proc_tag: str, log_path: Path, reader: threading.Thread):
        # exec_id "": never started (poll says 125, the log holds the engine's refusal)
        self.sandbox, self.exec_id, self.proc_tag, self.log_path, self.reader = sandbox, exec_id, proc_tag, log_path, reader
        self._code: int | None = None

    def poll(self) -> int | None:
        if self._code is not None:
            return self._code
        try:
            info = self.sandbox._api.exec_inspect(self.exec_id)
        except Exception:  # the container is gone: so is the process
            self._code = -9
            return self._code
        if info.get("Running"):
            return None
        self._code = info.get("ExitCode")
        if self._code is None:
            self._code = -1
        return self._code

    def stop(self, grace_s: float = 5.0) -> None:
        if not self.exec_id:
            return
        # the command first, so an engine stops its own workers (the wrapper reaps the rest once it exits),
        # then whatever is left of the launch
        for leader, wait_s in ((True, grace_s), (False, min(grace_s, 2.0))):
            self.sandbox._signal(self.proc_tag, "TERM", leader=leader)
            deadline = time.monotonic() + wait_s
            while self.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
        for _ in range(2):
            self.sandbox._signal(self.proc_tag, "KILL")
        deadline = time.monotonic() + 5
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        self.reader.join(timeout=2)

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def cpu_seconds(self) -> float:
        res = self.sandbox._run(["sh", f"{HELPERS}/cpu.sh", self.proc_tag], timeout_s=30)
        try:
            return int(res.strip().splitlines()[-1]) / os.sysconf("SC_CLK_TCK")
        except (ValueError, IndexError):
            return 0.0


class DockerSandbox:
    """One container; commands through `exec`, a server through `start`, removed by `cleanup`."""

    kind = "docker"
    enforces_network = True
    isolated = True

    def __init__(self, factory: "DockerSandboxes", tag: str, *, writable: Sequence[Path], network: bool,
                 extra_env: dict[str, str], labels: dict[str, str], gpu_ids: Sequence[str] = (),
                 image: str | None = None):
        import docker
        from docker.types import DeviceRequest, Mount

        self.tag = tag
        self.network = network
        self.client = client_for(factory.host)
        self._api = self.client.api
        given = [Path(p).absolute() for p in writable]
        self.writable = list(dict.fromkeys([*given, *(p.resolve() for p in given)]))  # both spellings of a symlinked path
        self.user = factory.user if factory.user is not None else f"{os.getuid()}:{os.getgid()}"
        root = self.user.split(":")[0] in ("0", "root")
        self.base_env = {"PATH": DEFAULT_PATH, "HOME": "/root" if root else "/tmp", "LANG": "C.UTF-8",
                         "PYTHONUNBUFFERED": "1", "ISOBENCH_TAG": tag}
        self.extra_env = dict(extra_env)
        if gpu_ids:  # the container sees only the slot's GPUs, numbered from 0
            self.extra_env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, range(len(gpu_ids))))
        self.image = image or factory.image
        key = (factory.host or default_host(), self.image)
        if key not in _images_seen:
            try:
                self.client.images.get(self.image)
            except docker.errors.ImageNotFound:
                if image:  # a task's own image for one commit
                    raise ImageMissing(f"the Docker image {image!r} is not on the engine at {key[0]}: build or pull it "
                                       "on every node before the run (docs/docker.md, images per commit)") from None
                raise SandboxUnavailable(
                    f"the Docker image {self.image!r} is not on the engine at {key[0]}: build it with "
                    f"`python -m isobench_ray.sandbox.docker build --image {self.image}` (docs/docker.md)") from None
            except docker.errors.APIError as exc:
                raise SandboxUnavailable(f"the Docker engine at {key[0]} failed: {exc}") from None
            _images_seen.add(key)
        mounts = []
        for path in dict.fromkeys(given):  # at the path the commands will name, from where it really is
            path.mkdir(parents=True, exist_ok=True)
            mounts.append(Mount(target=str(path), source=str(path.resolve()), type="bind", read_only=False))
        for spec in factory.mounts:  # extra host folders at the same path: model caches
            path, _, mode = spec.partition(":")
            if Path(path).exists() and not _under(Path(path).resolve(), self.writable):
                mounts.append(Mount(target=path, source=str(Path(path).resolve()), type="bind", read_only=mode != "rw"))
        self.name = f"isobench-{_safe_name(tag)[:80]}-{uuid.uuid4().hex[:6]}"
        kwargs: dict[str, Any] = dict(
            name=self.name, labels={LABEL: "1", **labels}, detach=True, init=True, auto_remove=True,
            network_mode=factory.network_mode if network else "none", mounts=mounts, environment=self.base_env,
            shm_size=factory.shm_size, user=self.user, working_dir="/", security_opt=["no-new-privileges"],
            hostname="sandbox" if not network or factory.network_mode != "host" else None)
        allowed = sorted(os.sched_getaffinity(0))
        if len(allowed) < (os.cpu_count() or 0):  # the stage's cores (host_cores on a GPU node): a container inherits nothing
            kwargs["cpuset_cpus"] = ",".join(map(str, allowed))
        if gpu_ids:
            kwargs["device_requests"] = [DeviceRequest(device_ids=list(gpu_ids), capabilities=[["gpu"]])]
        try:
            # PID 1 (docker-init) runs the time limit: when it passes, the engine stops and removes the container
            self.container = self.client.containers.run(self.image, ["sleep", str(int(factory.time_limit_s))], **kwargs)
        except docker.errors.DockerException as exc:
            raise SandboxUnavailable(f"cannot start a container of {self.image!r}: {exc}") from None
        self.id = self.container.id
        image_id = (getattr(self.container, "attrs", None) or {}).get("Image")
        if image_id:  # when this node last used the image: what eviction goes by
            factory.images(self.client).record_use(image_id)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, text in _SCRIPTS.items():
                info = tarfile.TarInfo(f"{HELPERS.strip('/')}/{name}")
                info.size, info.mode, info.mtime = len(text.encode()), 0o755, int(time.time())
                tar.addfile(info, io.BytesIO(text.encode()))
        try:
            self.container.put_archive("/", buf.getvalue())
        except docker.errors.DockerException as exc:
            _remove(self.client, [self.id])
            raise SandboxUnavailable(f"cannot set up container {self.name}: {exc}") from None

    # -------------------------------------------------------------- commands

    def _env(self, env: dict[str, str] | None, proc_tag: str | None, cpus: Sequence[int] | None) -> dict[str, str]:
        merged = {**self.base_env, **self.extra_env, **(env or {}), **pinned_env(cpus)}
        if proc_tag:
            merged["ISOBENCH_PROC"] = proc_tag
        return merged

    def _argv(self, command: Command, cpus: Sequence[int] | None) -> list[str]:
        argv = ["bash", "-c", command] if isinstance(command, str) else list(command)
        if cpus:
            argv = ["taskset", "-c", ",".join(map(str, cpus)), *argv]
        return ["sh", f"{HELPERS}/run.sh", *argv]

    def _launch(self, command: Command, cwd: Path, env: dict[str, str] | None, cpus: Sequence[int] | None,
                log_path: Path) -> tuple[str | None, str, threading.Thread, list[bytes], str]:
        """Starts a command; a thread copies its output to log_path. Returns (exec id, marker, thread,
        the wrapper's own stderr, an error message when the engine refused)."""
        proc_tag = f"{self.tag}/{uuid.uuid4().hex[:8]}"
        meta: list[bytes] = []
        log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            exec_id = self._api.exec_create(self.id, self._argv(command, cpus), environment=self._env(env, proc_tag, cpus),
                                            workdir=str(cwd), user=self.user, stdout=True, stderr=True)["Id"]
            stream = self._api.exec_start(exec_id, stream=True, demux=True)
        except Exception as exc:
            log_path.write_text(f"docker: {exc}\n")
            return None, proc_tag, threading.Thread(target=lambda: None), meta, f"docker: {exc}"

        def copy() -> None:
            with open(log_path, "wb") as log:
                try:
                    for out, err in stream:
                        if out:
                            log.write(out)
                            log.flush()
                        if err:
                            meta.append(err)
                except Exception:  # the stream closed under us (a timeout, the container removed)
                    pass

        reader = threading.Thread(target=copy, daemon=True, name=f"docker-output-{proc_tag}")
        reader.stream = stream  # type: ignore[attr-defined]
        reader.start()
        return exec_id, proc_tag, reader, meta, ""

    def _signal(self, proc_tag: str, sig: str, leader: bool = False) -> str:
        return self._run(["sh", f"{HELPERS}/kill.sh", sig, proc_tag, *(["leader"] if leader else [])], timeout_s=30)

    def _run(self, argv: list[str], timeout_s: float) -> str:
        """A helper command of the harness itself (no marker; never timed out by this module's killer)."""
        try:
            argv = ["timeout", "-s", "KILL", str(max(1, int(timeout_s))), *argv]
            exec_id = self._api.exec_create(self.id, argv, environment=self._env(None, None, None), user=self.user,
                                            stdout=True, stderr=True)["Id"]
            return self._api.exec_start(exec_id).decode(errors="replace")
        except Exception:
            return ""

    def exec(self, command: Command, *, cwd: Path, timeout_s: float, env: dict[str, str] | None = None,
             log_path: Path | None = None, cpus: Sequence[int] | None = None) -> ExecResult:
        start = time.monotonic()
        log_path = log_path or cwd.parent / f".{self.tag.replace('/', '_')}.exec.log"
        exec_id, proc_tag, reader, meta, error = self._launch(command, cwd, env, cpus, log_path)
        if exec_id is None:
            return ExecResult(125, error, False, time.monotonic() - start)
        reader.join(timeout=timeout_s)
        timed_out = reader.is_alive()
        if timed_out:
            for _ in range(2):
                self._signal(proc_tag, "KILL")
            reader.join(timeout=5)
            if reader.is_alive():  # something without the marker holds the pipe: stop listening
                try:
                    reader.stream.close()  # type: ignore[attr-defined]
                except Exception:
                    pass
                reader.join(timeout=2)
        code: int | None = None
        if not timed_out:
            try:
                info = self._api.exec_inspect(exec_id)
                code = info.get("ExitCode")
            except Exception as exc:
                code, error = 125, f"docker: {exc}"
        with open(log_path, "rb") as fh:
            fh.seek(max(0, log_path.stat().st_size - OUTPUT_LIMIT))
            output = fh.read().decode(errors="replace") + error
        return ExecResult(None if timed_out else code, output, timed_out, time.monotonic() - start,
                          _parse_times(b"".join(meta).decode(errors="replace")))

    def start(self, command: Command, *, cwd: Path, env: dict[str, str] | None = None, log_path: Path,
              cpus: Sequence[int] | None = None) -> DockerProcess:
        exec_id, proc_tag, reader, _, error = self._launch(command, cwd, env, cpus, log_path)
        process = DockerProcess(self, exec_id or "", proc_tag, log_path, reader)
        if exec_id is None:  # the engine refused (the container is gone): a process that exited, its log says why
            process._code = 125
        return process

    def http_status(self, url: str, timeout_s: float = 2.0) -> int | None:
        # from inside the container: a container without network has only its own loopback
        out = self._run(["python3", "-I", f"{HELPERS}/probe_http.py", url, str(timeout_s)], timeout_s=timeout_s + 30).strip()
        try:
            return int(out.splitlines()[-1])
        except (ValueError, IndexError):
            return None

    # -------------------------------------------------------------- files

    def read_file(self, path: Path) -> bytes:
        path = Path(path)
        if _under(path.resolve(), self.writable):  # the same file on both sides of the bind mount
            return path.read_bytes()
        try:
            chunks, _ = self.container.get_archive(str(path))
        except Exception as exc:
            raise FileNotFoundError(f"{path} in container {self.name}: {exc}") from None
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            member = tar.next()
            fh = tar.extractfile(member) if member else None
            if fh is None:
                raise IsADirectoryError(f"{path} in container {self.name} is not a file")
            return fh.read()

    def write_file(self, path: Path, data: bytes | str) -> None:
        path = Path(path)
        data = data.encode() if isinstance(data, str) else data
        if _under(path.resolve(), self.writable):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            return
        self._run(["mkdir", "-p", str(path.parent)], timeout_s=30)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(path.name)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            tar.addfile(info, io.BytesIO(data))
        if not self.container.put_archive(str(path.parent), buf.getvalue()):
            raise OSError(f"cannot write {path} in container {self.name}")

    # -------------------------------------------------------------- the end

    def cleanup(self) -> list[str]:
        return _remove(self.client, [self.id])


def _remove(client, ids: Sequence[str]) -> list[str]:
    """Kill and remove containers; returns what was running in them."""
    import docker

    killed = []
    for cid in ids:
        try:
            container = client.containers.get(cid)
        except docker.errors.NotFound:
            continue
        except docker.errors.APIError:
            container = None
        if container is not None and container.status == "running":
            try:
                top = container.top(ps_args="-eo pid,args")
                procs = [" ".join(p) for p in top.get("Processes") or []]
                # PID 1 (docker-init), the time limit's sleep and the wrappers are the container's own
                procs = [p for p in procs if "docker-init" not in p and HELPERS not in p and not re.search(r"^\d+ sleep \d+$", p)]
            except Exception:
                procs = []
            killed.append(f"container {container.name}" + (f" ({'; '.join(procs)})" if procs else ""))
        try:
            client.api.remove_container(cid, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if getattr(exc, "status_code", None) != 409:  # 409: auto_remove is removing it already
                raise
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                client.api.inspect_container(cid)
            except docker.errors.NotFound:
                break
            time.sleep(0.1)
    return killed


@dataclass(frozen=True)
class DockerSandboxes:
    """The factory of Docker sandboxes for one run: picklable (only settings; the client is made where it
    is used). `passthrough` names host variables that benchmark and validation commands may see."""

    host: str | None = None  # None: DOCKER_HOST, else the local socket (of the machine that runs the stage)
    image: str = DEFAULT_IMAGE
    shm_size: str = "8g"
    time_limit_s: float = 86400.0
    network_mode: str = "host"  # what network=True gets
    mounts: tuple[str, ...] = ()  # host folders every container sees at the same path, read-only ("path:rw": writable)
    user: str | None = None  # None: the harness's own uid:gid, so files in the bind mounts stay its own
    run: str = ""  # the run's name, a label
    passthrough: tuple[str, ...] = ()
    min_free_gb: float = 50.0  # under this, images are evicted least recently used first (sandbox/images.py)
    cache_dir: str = str(Path.home() / ".cache" / "isobench")  # where each engine's image-use record lives
    kind: str = "docker"
    can_isolate: bool = True
    extra_labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def __call__(self, tag: str, *, writable: Sequence[Path], network: bool, isolate: bool = False,
                 env: dict[str, str] | None = None, slot_env: dict[str, str] | None = None,
                 hide: Sequence[Path] = (), image: str | None = None) -> DockerSandbox:
        # `hide` needs nothing: a container sees only its mounts
        host = {} if isolate else {k: os.environ[k] for k in self.passthrough if k in os.environ}
        slot_env = dict(slot_env or {})
        gpus = [g for g in slot_env.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
        # the stages' tags: <attempt id> (the session), <attempt id>.validate, <attempt id>.bench
        attempt, _, stage = tag.rpartition(".")
        if stage not in STAGE_SUFFIXES:
            attempt, stage = tag, "session"
        labels = {KEY_LABELS["ISOBENCH_TAG"]: tag, "isobench.attempt": attempt, "isobench.stage": stage,
                  **({"isobench.run": self.run} if self.run else {}), **self.extra_labels}
        for key, value in slot_env.items():
            if key.startswith("ISOBENCH_"):
                labels[KEY_LABELS.get(key, key)] = value
        return DockerSandbox(self, tag, writable=writable, network=network, extra_env={**host, **slot_env, **(env or {})},
                             labels=labels, gpu_ids=gpus, image=image)

    def images(self, client=None):
        """The image cache of the engine this factory talks to (free space, LRU eviction, use record)."""
        from isobench_ray.sandbox.images import ImageCache

        key = hashlib.sha256((self.host or default_host()).encode()).hexdigest()[:12]
        return ImageCache(client or client_for(self.host), Path(self.cache_dir) / "images" / f"usage-{key}.json",
                          self.min_free_gb)

    def check(self) -> None:
        """Before a run is planned: the engine answers and holds the image (SandboxUnavailable otherwise)."""
        import docker

        client = client_for(self.host)
        try:
            client.images.get(self.image)
        except docker.errors.ImageNotFound:
            raise SandboxUnavailable(
                f"the Docker image {self.image!r} is not on the engine at {self.host or default_host()}: build it with "
                f"`python -m isobench_ray.sandbox.docker build --image {self.image}` (docs/docker.md)") from None

    def ensure_image(self, image: str, dockerfile: Path | None = None, buildargs: dict[str, str] | None = None) -> str:
        """A task's image for one commit: kept if present; else built from its Dockerfile template (the build
        context is the Dockerfile's folder; COMMIT and SHORT among `buildargs`), else pulled; eviction first
        (images.py). ImageMissing, with the reason, when none of that gives it. Images built here are keyed
        by content, as the SWE-bench harness keys its own: one built from another version of the template or
        other build args is built again (an image of that name made by someone else is kept as it is)."""
        import docker

        client = client_for(self.host)
        recipe = recipe_key(dockerfile, buildargs or {}) if dockerfile is not None else None
        with _building_lock(image):
            try:
                found = client.images.get(image).labels or {}
                if recipe is None or found.get(RECIPE_LABEL, recipe) == recipe:
                    return "present"
            except docker.errors.ImageNotFound:
                pass
            cache = self.images(client)
            try:
                if dockerfile is not None:
                    def build():
                        built, _ = client.images.build(path=str(dockerfile.parent), dockerfile=dockerfile.name, tag=image,
                                                       buildargs=buildargs or {}, rm=True,
                                                       labels={LABEL: "1", RECIPE_LABEL: recipe})
                        return built
                    cache.make_room_then(build)
                    return f"built from {dockerfile}"
                cache.make_room_then(client.images.pull, *split_image_name(image))
                return "pulled"
            except (docker.errors.BuildError, docker.errors.APIError) as exc:
                log = "".join(c.get("stream", "") or c.get("error", "") for c in getattr(exc, "build_log", []) or [])
                how = f"building it from {dockerfile} failed" if dockerfile is not None else "pulling it failed"
                raise ImageMissing(f"{self._absent(image)} and {how}: {exc}\n{log[-2000:]}".rstrip()) from None

    def _absent(self, image: str) -> str:
        return f"the Docker image {image!r} is not on the engine at {self.host or default_host()}"

    def locate_image(self, image: str, dockerfile: Path | None = None) -> str:
        """Where `image` would come from, asked before a run is planned: this engine, the Dockerfile template
        (it exists; whether it builds is known only by building), or the registry, asked for the image's
        manifest without pulling it. ImageMissing when none has it."""
        import docker
        import requests

        client = client_for(self.host)
        try:
            client.images.get(image)
            return "present"
        except docker.errors.ImageNotFound:
            pass
        except (docker.errors.DockerException, requests.RequestException) as exc:  # a malformed name, a slow engine
            return f"not checked: {str(exc)[:300]}"
        if dockerfile is not None:
            if not dockerfile.is_file():
                raise ImageMissing(f"{self._absent(image)} and its Dockerfile template {dockerfile} does not exist")
            return f"to be built from {dockerfile}"
        try:
            client.images.get_registry_data(image)
            return "in its registry"
        except (docker.errors.DockerException, requests.RequestException) as exc:
            # Settled only where the registry itself says it knows no such manifest or repository (the
            # distribution API's MANIFEST_UNKNOWN / NAME_UNKNOWN); unreachable, slow, or wanting credentials
            # (a private repository may answer 401 or 404 to a stranger): the stage on the node tries again.
            words = str(exc).lower()
            if isinstance(exc, docker.errors.NotFound) and ("manifest unknown" in words or "name unknown" in words):
                raise ImageMissing(f"{self._absent(image)} and its registry does not have it: {str(exc)[:500]}") from None
            return f"not checked: its registry did not say ({str(exc)[:300]})"

    def reap(self, key: str, value: str) -> list[str]:
        client = client_for(self.host)
        found = client.api.containers(all=True, filters={"label": [f"{LABEL}=1", f"{KEY_LABELS.get(key, key)}={value}"]})
        return _remove(client, [c["Id"] for c in found])


# ------------------------------------------------------------------ the base image


def build_script_key(script: Path = BUILD_SCRIPT) -> str:
    return hashlib.sha256(script.read_bytes()).hexdigest()[:16]


def base_tarball(cache_dir: Path, script: Path = BUILD_SCRIPT, log=None) -> Path:
    """The base file system tarball, built once per version of the build script and cached."""
    import subprocess

    out = Path(cache_dir) / "images" / f"isobench-base-{build_script_key(script)}.tar"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["sh", str(script), str(out)], stdout=log or subprocess.PIPE, stderr=subprocess.STDOUT)
    if res.returncode != 0 or not out.exists():
        detail = (res.stdout or b"").decode(errors="replace")[-3000:] if log is None else ""
        raise RuntimeError(f"building the base image failed ({script}, exit {res.returncode}):\n{detail}")
    return out


def split_image_name(image: str) -> tuple[str, str]:
    """(repository, tag) of `name[:tag]`; a registry's port (`host:5000/name`) is not a tag."""
    repository, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")
    return repository, tag


def import_base_image(client, tarball: Path, image: str = DEFAULT_IMAGE) -> None:
    repository, tag = split_image_name(image)
    client.api.import_image_from_file(str(tarball), repository=repository, tag=tag,
                                      changes=[f"ENV PATH={DEFAULT_PATH}", "ENV LANG=C.UTF-8", 'CMD ["bash"]'])
    client.images.get(image)  # raises if the import did not take


def ensure_base_image(client, image: str = DEFAULT_IMAGE, cache_dir: Path | None = None, log=None,
                      images=None) -> str:
    """Build (or reuse the cached tarball) and import the base image unless the engine has it; with an
    ImageCache, room is made first (and DiskFull raised when there is none)."""
    import docker

    try:
        client.images.get(image)
        return "present"
    except docker.errors.ImageNotFound:
        pass
    cache = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "isobench"
    cached = (cache / "images" / f"isobench-base-{build_script_key()}.tar").exists()
    if images is not None:
        images.make_room_then(import_base_image, client, base_tarball(cache, log=log), image)
    else:
        import_base_image(client, base_tarball(cache, log=log), image)
    return "imported from cache" if cached else "built"


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m isobench_ray.sandbox.docker")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build the base image with debootstrap and import it")
    build.add_argument("--image", default=os.environ.get("ISOBENCH_DOCKER_IMAGE", DEFAULT_IMAGE))
    build.add_argument("--host", default=os.environ.get("ISOBENCH_DOCKER_HOST"))
    build.add_argument("--cache-dir", default=os.environ.get("ISOBENCH_CACHE_DIR", str(Path.home() / ".cache" / "isobench")))
    args = parser.parse_args(argv)
    started = time.monotonic()
    how = ensure_base_image(client_for(args.host), args.image, Path(args.cache_dir), log=sys.stderr)
    print(f"{args.image}: {how} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
