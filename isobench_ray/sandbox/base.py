"""The Sandbox seam: where a stage runs commands, starts servers and touches files.

Stages receive a `SandboxFactory` (from the run configuration, or the slot for benchmarks) and never build
a sandbox themselves, so a local process group and a container are the same to them. The promises every
implementation keeps are checked by one conformance suite (`tests/test_sandbox_conformance.py`):

- `exec` never raises for a failing or hanging command: it reports `returncode` and `timed_out`, and the
  whole process tree is gone when it returns, children that started their own session included; what was
  still running `LINGER_S` after the command itself ended (a daemon it left behind) is killed and named in
  `leftovers`, where the sandbox can see it (docs/security.md);
- only the environment the caller gave (plus a minimal base) is visible to the command;
- with `network=False` nothing outside the sandbox can be reached, where `enforces_network` says so;
- `reap_idle()` kills what still runs when nothing should (between arms), keeping the sandbox;
- `cleanup()` removes everything this sandbox ever started, found by its own tag or label.

An isolated sandbox (`isolated`: bubblewrap, Docker) also holds as root (docs/security.md): its commands
hold no capability (no mount, umount or remount), write nothing outside the writable paths, read none of
the harness's files (caches, mirrors, checkout, /etc/shadow, unix sockets), fork no more than its pids
limit, and with `network=True` reach the outside but never the host (its loopback, where Ray's job API
and dashboard listen, or its other addresses). The conformance suite replays each as an attack.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

from isobench_ray.text import tail

OUTPUT_LIMIT = 8 * 1024 * 1024  # bytes of output kept in memory per command; the log file keeps all
# How long a finished command's children may take to exit on their own (multiprocessing's resource tracker
# goes a moment after its parent) before what is left counts as left behind
LINGER_S = 2.0
WATCH_MARK = "isobench-watch"  # a jail's watcher's lines: MARK <launch> cpu <s>; MARK <launch> left <pid> <command>

Command = str | Sequence[str]  # a shell line, or an argv that no shell sees


@dataclass(frozen=True)
class WatchReport:
    """What a jail's watcher said of one finished command (bwrap.py)."""

    output: str  # the command's output, the watcher's lines taken out
    leftovers: tuple[str, ...]
    cpu_s: float | None  # the command tree's CPU time (None: no report)


def read_watch(output: str, launch: str) -> WatchReport:
    """The watcher's lines of one launch (marker `launch`) taken out of its output. Code in the sandbox can
    print such lines too, but only to its own cost: every leftover named counts, and the least CPU time said."""
    prefix = f"{WATCH_MARK} {launch} "
    kept, left, cpu = [], [], []
    for line in output.splitlines(keepends=True):
        if not line.startswith(prefix):
            kept.append(line)
            continue
        kind, _, rest = line[len(prefix):].strip().partition(" ")
        if kind == "left":
            left.append(rest)
        elif kind == "cpu":
            try:
                cpu.append(float(rest))
            except ValueError:
                continue
    return WatchReport("".join(kept), tuple(left), min(cpu) if cpu else None)


def pinned_env(cpus: Sequence[int] | None) -> dict[str, str]:
    """Thread pools sized to the cores a process is pinned to (OpenMP, MKL, OpenBLAS, and torch through OpenMP)."""
    if not cpus:
        return {}
    n = str(len(cpus))
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "ISOBENCH_CPUS": ",".join(map(str, cpus))}


class SandboxUnavailable(RuntimeError):
    """The sandbox asked for cannot be had here (no bubblewrap, no Docker engine): a machine problem."""


class ImageMissing(SandboxUnavailable):
    """The container image an arm needs (a task's `repo.image` for that commit) is not on this node's engine."""


@dataclass(frozen=True)
class ExecResult:
    returncode: int | None
    output: str  # stdout and stderr interleaved, as a person would have seen them
    timed_out: bool
    duration_s: float
    cpu_s: float = 0.0  # CPU time the command and its children used (where the sandbox can tell)
    leftovers: tuple[str, ...] = ()  # processes still running LINGER_S after the command ended ("pid command")

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def tail(self, lines: int = 20) -> str:
        return tail(self.output, lines)


class Process(Protocol):
    """A long-running command (an inference server)."""

    def poll(self) -> int | None: ...
    def stop(self, grace_s: float = 5.0) -> None: ...
    def output(self) -> str: ...
    def cpu_seconds(self) -> float:
        """CPU time its live process tree has used so far."""
        ...


class Sandbox(Protocol):
    tag: str
    kind: str  # "local", "bwrap", "docker": shown in records and reports
    enforces_network: bool  # network=False is a promise, not a wish
    isolated: bool  # the host's files, processes and network are out of reach

    def exec(self, command: Command, *, cwd: Path, timeout_s: float, env: dict[str, str] | None = None,
             log_path: Path | None = None, cpus: Sequence[int] | None = None) -> ExecResult:
        """`cpus`: pin the command to these cores, and size its thread pools to them."""
        ...

    def start(self, command: Command, *, cwd: Path, env: dict[str, str] | None = None, log_path: Path,
              cpus: Sequence[int] | None = None) -> Process: ...

    def http_status(self, url: str, timeout_s: float = 2.0) -> int | None:
        """The HTTP status of a GET from where the commands run (None: nothing answered)."""
        ...

    def read_file(self, path: Path) -> bytes: ...
    def write_file(self, path: Path, data: bytes | str) -> None: ...

    def reap_idle(self) -> list[str]:
        """When none of its commands should be running (between two arms): kill whatever of the sandbox still
        runs, the sandbox itself kept for later commands; returns what it killed."""
        ...

    def cleanup(self) -> list[str]:
        """Stop everything this sandbox started; returns what it had to kill."""
        ...


class SandboxFactory(Protocol):
    """Makes the sandboxes of one run; picklable, so it travels to Ray workers with the stages."""

    kind: str
    can_isolate: bool  # isolate=True will work here

    def __call__(self, tag: str, *, writable: Sequence[Path], network: bool, isolate: bool = False,
                 env: dict[str, str] | None = None, slot_env: dict[str, str] | None = None,
                 hide: Sequence[Path] = (), image: str | None = None) -> Sandbox:
        """`hide`: folders an isolated command must not see beyond the run's own (a task's local repository).
        `image`: the container image for this sandbox instead of the run's default (a task's engine image for
        one commit); ImageMissing when the engine does not have it. Sandboxes without images ignore it
        (`images_of` tells which have them)."""
        ...

    def reap(self, key: str, value: str) -> list[str]:
        """Kill whatever carries label key=value (a dead actor's leftovers on its slot)."""
        ...

    def check(self) -> None:
        """Before a run is planned: SandboxUnavailable, with what to do, when this kind cannot run here."""
        ...


class ImageStore(Protocol):
    """A node's container images, for the sandboxes that run in them (docker): not every factory has one."""

    def ensure(self, image: str, dockerfile: Path | None = None, buildargs: dict[str, str] | None = None) -> str:
        """Make `image` present on this node: built from `dockerfile` (with `buildargs`), else pulled, room
        made first; ImageMissing when neither works. Returns what was done."""
        ...

    def locate(self, image: str, dockerfile: Path | None = None) -> str:
        """Before a run is planned, without pulling or building: where `image` would come from (on the engine,
        a Dockerfile template, the registry). ImageMissing, with the reason, when from nowhere."""
        ...

    def report(self) -> dict:
        """The images on this node, their size and last use, and the free space."""
        ...


def host_env(names: Sequence[str]) -> dict[str, str]:
    """This host's values of `names` (the run's passthrough variables: model caches, thread counts)."""
    return {k: os.environ[k] for k in names if k in os.environ}


def with_agent(sandboxes: SandboxFactory, programs: Sequence[str | Path] = (), endpoints: Sequence[str] = ()) -> SandboxFactory:
    """The factory for one agent's sessions: what its configuration names and its commands need, where the
    factory takes it. `programs` (its CLI: a path or a name on PATH) become readable where sandboxes run on
    this machine's files (a `readable` field: bubblewrap's allow-list; a container has its image's);
    `endpoints` (its model's URLs) that name this host's loopback get that port forwarded into a sandbox
    with network (an `endpoints` field), the one door to the host it has."""
    import dataclasses

    if not dataclasses.is_dataclass(sandboxes):
        return sandboxes
    fields = {f.name for f in dataclasses.fields(sandboxes)}
    changes = {}
    if programs and "readable" in fields:
        changes["readable"] = (*sandboxes.readable, *map(str, programs))
    if endpoints and "endpoints" in fields:
        changes["endpoints"] = (*sandboxes.endpoints, *endpoints)
    return dataclasses.replace(sandboxes, **changes) if changes else sandboxes


def images_of(sandboxes: SandboxFactory) -> ImageStore | None:
    """The node's image store of a factory whose sandboxes run in images (its `images()`); None for one whose
    sandboxes run on this machine's files (local), where images do not apply. Reaches the engine: ask only
    when there is an image to ask about."""
    images = getattr(sandboxes, "images", None)
    return images() if callable(images) else None


def open_fresh(path: Path):
    """`path` opened for writing as a new regular file, never through a symbolic link: code that ran in a
    sandbox may have planted one where the harness writes next (a log, a probe's file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644), "wb")
