"""A process limit for bubblewrap sandboxes: a pids cgroup per launch, where this process can make one.

A fork bomb inside a sandbox must stop at the sandbox's limit, not at the machine's process table. The
kernel counts a cgroup's tasks (processes and threads) and refuses a fork past `pids.max`. The harness makes
one cgroup per launch under `isobench/` of the pids hierarchy (cgroup v1's `pids` mount, or cgroup v2 with
the `pids` controller enabled), puts the launch's first processes in it before the command runs (the
bubblewrap child blocks until then), and removes it when the launch is over.

Where no cgroup can be made (a non-root harness without a delegated cgroup), `nproc_fallback` says whether
RLIMIT_NPROC can stand in: inside the sandbox's own user namespace the kernel (5.14+) counts the processes
of that namespace's user against it, but never those of the init user (root), so a root harness without a
pids cgroup has no limit to offer and the sandbox is refused.
"""

from __future__ import annotations

import errno
import os
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

PARENT = "isobench"  # every launch's cgroup lives under this folder of the hierarchy


def _mounts() -> list[tuple[str, str, str]]:
    """(mount point, file system type, options) of every cgroup mount of this process's mount namespace."""
    found = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
            found.append((fields[4].replace("\\040", " "), tail[0], tail[2]))
    return found


def _enable_v2(root: Path) -> bool:
    """The pids controller usable in `root`/isobench (enabled where it is not yet, when allowed)."""
    try:
        if "pids" not in (root / "cgroup.controllers").read_text().split():
            return False
        for folder in (root, root / PARENT):
            folder.mkdir(exist_ok=True)
            control = folder / "cgroup.subtree_control"
            if "pids" not in control.read_text().split():
                control.write_text("+pids")
        return True
    except OSError:
        return False


@lru_cache(maxsize=1)
def pids_root() -> Path | None:
    """The folder launch cgroups are made in (`<pids hierarchy>/isobench`), or None where this process cannot
    make one (no pids controller, no permission)."""
    mounts = _mounts()
    for point, kind, options in mounts:  # cgroup v1: a hierarchy of its own for pids
        if kind == "cgroup" and "pids" in options.split(","):
            parent = Path(point) / PARENT
            try:
                parent.mkdir(exist_ok=True)
            except OSError:
                continue
            if os.access(parent, os.W_OK):
                return parent
    for point, kind, _ in mounts:  # cgroup v2: the unified hierarchy, pids enabled under isobench/
        if kind == "cgroup2" and _enable_v2(Path(point)) and os.access(Path(point) / PARENT, os.W_OK):
            return Path(point) / PARENT
    return None


def nproc_fallback() -> bool:
    """RLIMIT_NPROC inside the sandbox's user namespace limits its processes (never those of root)."""
    return os.geteuid() != 0


def can_limit() -> bool:
    return pids_root() is not None or nproc_fallback()


@dataclass
class PidsCgroup:
    """One launch's pids cgroup: made with its limit, processes added, removed once they are gone."""

    path: Path

    @classmethod
    def make(cls, name: str, limit: int) -> "PidsCgroup | None":
        root = pids_root()
        if root is None:
            return None
        path = root / f"{''.join(c if c.isalnum() else '-' for c in name)[:60]}-{uuid.uuid4().hex[:8]}"
        path.mkdir()
        (path / "pids.max").write_text(str(limit))
        return cls(path)

    def add(self, pids: Iterable[int]) -> None:
        for pid in pids:
            try:
                (self.path / "cgroup.procs").write_text(str(pid))
            except OSError as exc:
                if exc.errno != errno.ESRCH:  # gone already: nothing to limit
                    raise

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def remove(self) -> None:
        """rmdir once empty; a cgroup with processes left (killed, not yet reaped) is left for the next sweep."""
        try:
            self.path.rmdir()
        except OSError:
            pass


def sweep(min_age_s: float = 3600.0) -> None:
    """Remove the empty launch cgroups that earlier processes left (a harness killed mid-command); only old
    ones, so another harness's cgroup between its making and its first process is left alone."""
    import time

    root = pids_root()
    if root is None:
        return
    for child in root.iterdir():
        try:
            if child.is_dir() and time.time() - child.stat().st_mtime > min_age_s:
                child.rmdir()
        except OSError:
            pass
