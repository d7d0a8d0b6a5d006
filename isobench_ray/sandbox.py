"""Where commands run: the Sandbox interface and its local implementation.

`LocalSandbox` runs a process group on this machine, optionally inside bubblewrap (the root file system
read-only, only the work tree writable, no network unless asked for, its own PID namespace). Every process
it starts carries `ISOBENCH_TAG` in its environment, so whatever outlives its parent (engine workers
survive a SIGKILL of the server) is found and reaped by tag. Error contract: `exec` never raises for a
failing or hanging command; it reports `returncode` and `timed_out`, and the whole process tree is gone
when it returns.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

OUTPUT_LIMIT = 8 * 1024 * 1024  # bytes of output kept in memory per command; the log file keeps all


def tail(text: str, lines: int = 20) -> str:
    """The last lines of a command's output: what an error message shows."""
    return "\n".join(text.strip().splitlines()[-lines:])


@dataclass
class ExecResult:
    returncode: int | None
    output: str  # stdout and stderr interleaved, as a person would have seen them
    timed_out: bool
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def tail(self, lines: int = 20) -> str:
        return tail(self.output, lines)


class Process(Protocol):
    def poll(self) -> int | None: ...
    def stop(self, grace_s: float = 5.0) -> None: ...
    def output(self) -> str: ...


class Sandbox(Protocol):
    """Runs commands in a work tree. One real implementation per backend (local here)."""

    def exec(self, command: str, *, cwd: Path, timeout_s: float, env: dict[str, str] | None = None,
             log_path: Path | None = None) -> ExecResult: ...

    def start(self, command: str, *, cwd: Path, env: dict[str, str] | None = None, log_path: Path) -> Process: ...


def _kill_group(popen: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM the process group, SIGKILL what is left after grace_s."""
    pgid = popen.pid
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            popen.poll()  # reap the leader: a zombie would keep the group "alive"
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)


def reap_tagged(tag: str, key: str = "ISOBENCH_TAG") -> list[int]:
    """SIGKILL every process whose environment carries key=tag (orphans of a dead parent)."""
    killed = []
    needle = f"{key}={tag}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
        except (OSError, PermissionError):
            continue
    return killed


class LocalProcess:
    """A long-running command (an inference server) in its own process group, logging to a file."""

    def __init__(self, popen: subprocess.Popen, log_path: Path, proc_tag: str):
        self.popen, self.log_path, self.proc_tag = popen, log_path, proc_tag

    def poll(self) -> int | None:
        return self.popen.poll()

    def stop(self, grace_s: float = 5.0) -> None:
        _kill_group(self.popen, grace_s)
        try:
            self.popen.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        reap_tagged(self.proc_tag, "ISOBENCH_PROC")

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class LocalSandbox:
    """Commands as local process groups; with `isolate`, inside bubblewrap when it is installed."""

    def __init__(self, tag: str, *, isolate: bool = False, network: bool = True,
                 writable: list[Path] | None = None, extra_env: dict[str, str] | None = None):
        self.tag = tag
        self.network = network
        self.writable = [Path(p) for p in (writable or [])]
        self.extra_env = extra_env or {}
        self.bwrap = shutil.which("bwrap") if isolate else None

    @property
    def isolated(self) -> bool:
        return self.bwrap is not None

    def _argv(self, command: str, cwd: Path) -> list[str]:
        if not self.bwrap:
            return ["bash", "-c", command]
        argv = [self.bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
                "--unshare-pid", "--die-with-parent", "--new-session"]
        if not self.network:
            argv.append("--unshare-net")
        for path in {cwd, *self.writable}:
            argv += ["--bind", str(path), str(path)]
        return argv + ["--chdir", str(cwd), "bash", "-c", command]

    def _env(self, env: dict[str, str] | None, proc_tag: str) -> dict[str, str]:
        # ISOBENCH_TAG marks the attempt (reaped when its stage ends), ISOBENCH_PROC this one launch.
        merged = {**os.environ, **self.extra_env, **(env or {}), "ISOBENCH_TAG": self.tag, "ISOBENCH_PROC": proc_tag}
        # `python` in a task's command is the harness's interpreter unless the task's env says otherwise.
        merged["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{merged.get('PATH', '')}"
        merged.setdefault("PYTHONUNBUFFERED", "1")
        return merged

    def exec(self, command: str, *, cwd: Path, timeout_s: float, env: dict[str, str] | None = None,
             log_path: Path | None = None) -> ExecResult:
        start = time.monotonic()
        log_path = log_path or cwd.parent / f".{self.tag}.exec.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        proc_tag = f"{self.tag}/{uuid.uuid4().hex[:8]}"
        with open(log_path, "wb") as log:
            popen = subprocess.Popen(self._argv(command, cwd), cwd=cwd, env=self._env(env, proc_tag), stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            timed_out = False
            try:
                popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            # The leader may have exited while children linger; the group goes either way.
            _kill_group(popen, grace_s=3.0)
            popen.wait()
        reap_tagged(proc_tag, "ISOBENCH_PROC")
        with open(log_path, "rb") as fh:
            fh.seek(max(0, log_path.stat().st_size - OUTPUT_LIMIT))
            output = fh.read().decode(errors="replace")
        return ExecResult(None if timed_out else popen.returncode, output, timed_out, time.monotonic() - start)

    def start(self, command: str, *, cwd: Path, env: dict[str, str] | None = None, log_path: Path) -> LocalProcess:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        proc_tag = f"{self.tag}/{uuid.uuid4().hex[:8]}"
        with open(log_path, "wb") as log:  # the child keeps its own descriptor
            popen = subprocess.Popen(self._argv(command, cwd), cwd=cwd, env=self._env(env, proc_tag), stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        return LocalProcess(popen, log_path, proc_tag)
