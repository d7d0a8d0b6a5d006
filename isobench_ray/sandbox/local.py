"""The local sandbox: process groups on this machine, inside bubblewrap when isolation is asked for.

With `isolate`, every command runs in a bubblewrap jail (bwrap.py): no privilege in its own user namespace,
an allow-listed file system (the toolchain and interpreters read-only, the writable paths read-write,
nothing else of the host), a pids limit, a sized /tmp, and a network namespace of its own (netns.py:
egress without the host when network is asked for). Without `isolate` a command is a plain process group
of the harness's user: no promise beyond the process tree (docs/security.md). Every process carries
`ISOBENCH_TAG` (this sandbox) and `ISOBENCH_PROC` (one launch) in its environment, so whatever outlives its
parent's process group (engine workers survive a SIGKILL of the server; a `setsid` child leaves the group)
is found and reaped by tag with psutil.
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import psutil

from isobench_ray.sandbox.base import (
    LINGER_S,
    OUTPUT_LIMIT,
    Command,
    ExecResult,
    SandboxUnavailable,
    open_fresh,
    pinned_env,
    read_watch,
)
from isobench_ray.sandbox.bwrap import Jail
from isobench_ray.text import read_log

# What every command sees of the host's environment; everything else must be given by name.
# OPENBLAS_*: set on processors where older OpenBLAS builds compute wrong results; machine facts, no secrets.
BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def _kill_tree(pid: int, grace_s: float, leader_first: bool = False) -> None:
    """SIGTERM a process group and its descendants, SIGKILL what is left after grace_s.

    `leader_first` (stopping a server): SIGTERM the leader alone and give it grace_s to shut its own workers
    down (vLLM's and SGLang's servers stop their engine processes on SIGTERM; a group-wide SIGTERM kills
    those mid-step and the log ends in a traceback), then the rest of the tree the same way."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        root, procs = None, []
    if leader_first and root is not None:
        try:
            leader = root
            while leader.name() == "bwrap" and len(kids := leader.children()) == 1:  # bwrap forwards no signal
                leader = kids[0]
            leader.send_signal(signal.SIGTERM)
            leader.wait(timeout=grace_s)
        except (psutil.NoSuchProcess, psutil.TimeoutExpired):
            pass
        procs = [p for p in procs if p.is_running()]
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass
        for proc in procs:
            try:
                proc.send_signal(sig)
            except psutil.NoSuchProcess:
                pass
        _, procs = psutil.wait_procs(procs, timeout=wait)


# Pins without taskset: set the affinity, then become the command (exec keeps the pid)
_PIN = "import os, sys; os.sched_setaffinity(0, map(int, sys.argv[1].split(','))); os.execvp(sys.argv[2], sys.argv[2:])"


def _pinned(argv: list[str], cpus: Sequence[int] | None, cwd: Path, path: str) -> list[str]:
    """`argv` run on `cpus` only. The affinity is set before the command's exec (taskset, as in the Docker
    sandbox, else the harness's Python doing the same), so every thread and child it makes inherits it; no
    `preexec_fn`, which is unsafe in a threaded parent such as a Ray worker. A program that is not there
    raises FileNotFoundError here, as Popen does unpinned (`cwd`, `path`: where Popen would look)."""
    if not cpus:
        return argv
    program = argv[0]
    if not (os.access(Path(cwd, program), os.X_OK) if "/" in program else shutil.which(program, path=path)):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    cores = ",".join(map(str, cpus))
    taskset = shutil.which("taskset")
    return [taskset, "-c", cores, *argv] if taskset else [sys.executable, "-I", "-c", _PIN, cores, *argv]


def tagged(value: str, key: str = "ISOBENCH_TAG") -> list[psutil.Process]:
    """The live processes whose environment carries key=value (zombies aside)."""
    found = []
    me = os.getpid()
    for proc in psutil.process_iter():
        try:
            if proc.pid != me and _alive(proc) and proc.environ().get(key) == value:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    return found


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def lingering(launch: str, linger_s: float = LINGER_S) -> tuple[str, ...]:
    """What of a finished launch (its marker ISOBENCH_PROC) is still running `linger_s` later ("pid command")."""
    deadline = time.monotonic() + linger_s
    left = tagged(launch, "ISOBENCH_PROC")
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [p for p in left if _alive(p)]
    named = []
    for proc in left:
        try:
            named.append(f"{proc.pid} {' '.join(proc.cmdline())[:200]}")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return tuple(named)


def reap_tagged(value: str, key: str = "ISOBENCH_TAG") -> list[str]:
    """SIGKILL every process whose environment carries key=value (orphans of a dead parent)."""
    killed = []
    for proc in tagged(value, key):
        try:
            name = proc.name()
            proc.kill()
            killed.append(f"pid {proc.pid} ({name})")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return killed


class LocalProcess:
    """A long-running command in its own process group, logging to a file."""

    def __init__(self, popen: subprocess.Popen, log_path: Path, proc_tag: str):
        self.popen, self.log_path, self.proc_tag = popen, log_path, proc_tag

    def poll(self) -> int | None:
        return self.popen.poll()

    def stop(self, grace_s: float = 5.0) -> None:
        _kill_tree(self.popen.pid, grace_s, leader_first=True)
        try:
            self.popen.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        reap_tagged(self.proc_tag, "ISOBENCH_PROC")

    def output(self) -> str:
        return read_log(self.log_path)

    def cpu_seconds(self) -> float:
        try:
            root = psutil.Process(self.popen.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0.0
        total = 0.0
        for proc in procs:
            try:
                t = proc.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total


class LocalSandbox:
    """Commands as local process groups; with `isolate`, inside bubblewrap (required, never silently dropped)."""

    def __init__(self, tag: str, *, isolate: bool = False, network: bool = True, writable: Sequence[Path] = (),
                 extra_env: dict[str, str] | None = None, hidden: Sequence[Path] = (), jail: dict | None = None):
        """`jail`: the bubblewrap settings of an isolated sandbox (Jail's readable, tmp_bytes, pids_limit)."""
        self.tag = tag
        self.network = network
        self.writable = [Path(p) for p in writable]
        self.hidden = [Path(p) for p in hidden]
        self.extra_env = extra_env or {}
        self.jail: Jail | None = None
        if isolate:
            bwrap = shutil.which("bwrap")
            if not bwrap:
                raise SandboxUnavailable("isolation asked for, but bubblewrap (bwrap) is not installed")
            self.jail = Jail(bwrap, tag, writable=self.writable, hidden=self.hidden, network=network, **(jail or {}))
            self.jail.check()
        self.kind = "bwrap" if self.jail else "local"
        self.enforces_network = self.jail is not None

    @property
    def isolated(self) -> bool:
        return self.jail is not None

    def _env(self, env: dict[str, str] | None, proc_tag: str) -> dict[str, str]:
        merged = {k: os.environ[k] for k in BASE_ENV if k in os.environ}
        merged |= {**self.extra_env, **(env or {}), "ISOBENCH_TAG": self.tag, "ISOBENCH_PROC": proc_tag}
        # `python` in a task's command is the harness's interpreter unless the task's engine environment
        # gives a PATH of its own (RepoSpec.python)
        if "PATH" not in {**self.extra_env, **(env or {})}:
            merged["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{merged.get('PATH', os.defpath)}"
        merged.setdefault("PYTHONUNBUFFERED", "1")
        return merged

    def _popen(self, command: Command, cwd: Path, env: dict[str, str] | None, log,
               cpus: Sequence[int] | None = None, watch: bool = False) -> tuple[subprocess.Popen, str]:
        proc_tag = f"{self.tag}/{uuid.uuid4().hex[:8]}"
        merged = self._env({**(env or {}), **pinned_env(cpus)}, proc_tag)
        argv = ["bash", "-c", command] if isinstance(command, str) else list(command)
        path = merged.get("PATH", os.defpath)
        if self.jail is not None:
            return self.jail.launch(argv, cwd, merged, log, pinned=lambda a: _pinned(a, cpus, cwd, path),
                                    watch=proc_tag if watch else "").popen, proc_tag
        popen = subprocess.Popen(_pinned(argv, cpus, cwd, path), cwd=cwd, env=merged, stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        return popen, proc_tag

    def exec(self, command: Command, *, cwd: Path, timeout_s: float, env: dict[str, str] | None = None,
             log_path: Path | None = None, cpus: Sequence[int] | None = None) -> ExecResult:
        start = time.monotonic()
        log_path = log_path or cwd.parent / f".{self.tag.replace('/', '_')}.exec.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        left: tuple[str, ...] = ()
        with open_fresh(log_path) as log:
            popen, proc_tag = self._popen(command, cwd, env, log, cpus, watch=True)
            timed_out = False
            try:
                popen.wait(timeout=timeout_s)
                if self.jail is None:  # a jail's watcher names them in the log (bwrap.py)
                    left = lingering(proc_tag)
            except subprocess.TimeoutExpired:
                timed_out = True
            # The leader may have exited while children linger; the group goes either way.
            _kill_tree(popen.pid, grace_s=3.0)
            popen.wait()
        reap_tagged(proc_tag, "ISOBENCH_PROC")
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the command's tree, once waited for
        cpu_s = (children_after.ru_utime - children_before.ru_utime) + (children_after.ru_stime - children_before.ru_stime)
        with open(log_path, "rb") as fh:
            fh.seek(max(0, log_path.stat().st_size - OUTPUT_LIMIT))
            watched = read_watch(fh.read().decode(errors="replace"), proc_tag)
        if self.jail is not None and watched.cpu_s is not None:
            cpu_s = watched.cpu_s  # what the harness's own children's usage cannot see through bubblewrap
        return ExecResult(None if timed_out else popen.returncode, watched.output, timed_out, time.monotonic() - start,
                          cpu_s, leftovers=left + watched.leftovers)

    def start(self, command: Command, *, cwd: Path, env: dict[str, str] | None = None, log_path: Path,
              cpus: Sequence[int] | None = None) -> LocalProcess:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open_fresh(log_path) as log:  # the child keeps its own descriptor
            popen, proc_tag = self._popen(command, cwd, env, log, cpus)
        return LocalProcess(popen, log_path, proc_tag)

    def http_status(self, url: str, timeout_s: float = 2.0) -> int | None:
        # Plain local commands share this machine's loopback; an isolated one's servers are in its own
        # network namespace: probe from there
        if self.jail is not None:
            return self._probe_inside(url, timeout_s)
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return None

    def read_file(self, path: Path) -> bytes:
        return Path(path).read_bytes()

    def write_file(self, path: Path, data: bytes | str) -> None:
        with open_fresh(Path(path)) as fh:
            fh.write(data.encode() if isinstance(data, str) else data)

    def _probe_inside(self, url: str, timeout_s: float) -> int | None:
        probe = ("import sys, urllib.request, urllib.error\ntry:\n    print(urllib.request.urlopen(sys.argv[1], "
                 "timeout=float(sys.argv[2])).status)\nexcept urllib.error.HTTPError as e:\n    print(e.code)\n"
                 "except Exception:\n    print('none')")
        cwd = self.writable[0] if self.writable else Path.cwd()
        res = self.exec([sys.executable, "-I", "-c", probe, url, str(timeout_s)], cwd=cwd, timeout_s=timeout_s + 30,
                        log_path=cwd.parent / f".{self.tag.replace('/', '_')}.probe.log")
        try:
            return int(res.output.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return None

    def reap_idle(self) -> list[str]:
        # a jail's launches end with their PID namespace; a plain one's daemons carry the tag unless they
        # cleared their environment (docs/security.md: plain local promises nothing there)
        return reap_tagged(self.tag)

    def cleanup(self) -> list[str]:
        killed = reap_tagged(self.tag)
        if self.jail is not None:
            self.jail.close()
        return killed


@dataclass(frozen=True)
class LocalSandboxes:
    """The factory of local sandboxes for one run. `passthrough` names host variables that benchmark and
    validation commands may see (model caches); agents see only their own config's variables."""

    passthrough: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()  # folders an isolated command must not see (cache, run dir, work root)
    readable: tuple[str, ...] = ()  # what an isolated command may read: sandbox_readable, the agent's CLI (with_agent)
    endpoints: tuple[str, ...] = ()  # the agent's model endpoints (with_agent): a port on this host's loopback is forwarded
    tmp_bytes: int = 2 << 30  # /tmp and /dev/shm of an isolated command (sandbox_tmp_size)
    pids_limit: int = 4096  # processes and threads of an isolated sandbox (sandbox_pids_limit)
    kind: str = "local"

    def __call__(self, tag: str, *, writable: Sequence[Path], network: bool, isolate: bool = False,
                 env: dict[str, str] | None = None, slot_env: dict[str, str] | None = None,
                 hide: Sequence[Path] = (), image: str | None = None) -> LocalSandbox:
        # `image` names a container image: local processes run on this machine's files, so it does not apply
        host = {} if isolate else {k: os.environ[k] for k in self.passthrough if k in os.environ}
        hidden = [Path(h) for h in (*self.hidden, *hide)]
        from isobench_ray.sandbox.netns import loopback_ports

        jail = dict(readable=list(self.readable), host_ports=loopback_ports(self.endpoints), tmp_bytes=self.tmp_bytes,
                    pids_limit=self.pids_limit)
        return LocalSandbox(tag, isolate=isolate, network=network, writable=writable, hidden=hidden,
                            extra_env={**host, **(slot_env or {}), **(env or {})}, jail=jail)

    @property
    def can_isolate(self) -> bool:
        from isobench_ray.sandbox import limits

        return shutil.which("bwrap") is not None and limits.can_limit()

    def check(self) -> None:
        """Plain processes always run; missing bubblewrap is decided per agent (runner.check_containment)."""

    def reap(self, key: str, value: str) -> list[str]:
        return reap_tagged(value, key)
