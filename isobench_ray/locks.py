"""The one file lock of the harness: the kernel's flock, so a lock goes with the process that held it,
however that process ended (a killed driver, a node that lost a worker)."""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


class LockBusy(BlockingIOError):
    """The lock is held elsewhere and the caller asked not to wait."""


@contextmanager
def file_lock(path: Path, *, shared: bool = False, wait: bool = True) -> Iterator[IO[str]]:
    """Hold `path` locked (exclusive, or shared with other shared holders) while the block runs; yields the
    open file (a holder may write who it is). With wait=False a held lock raises LockBusy at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(fh, mode)
        except BlockingIOError:
            raise LockBusy(str(path)) from None
        try:
            yield fh
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
