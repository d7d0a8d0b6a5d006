"""The run directory is the record: every finished stage of every attempt, written at once and atomically.

    results/<run>/
      run.json                      settings, inputs, versions
      plan.json                     the attempts, in plan order
      attempts/<attempt id>/
        attempt.json  session.json  patch.diff  agent.log  prompt.md
        validation.json  measurements.json  bench/*.log  scores.json
        record.json                 the attempt's final record: its presence means "done"
        judgement.json              the judges' votes (soft metrics), added after the record
      index.jsonl                   one line per record written (id, task, agent, status, cause), appended
                                    and fsynced after the record: what resume and status read at scale
      attempts.parquet  report.md   written by the report stage

Only the driver writes here (results travel back through Ray), so no two writers race on a file.
A stage's JSON exists only when the stage finished; a rerun skips what exists. The folders are the source of
truth: the index is rebuilt from them when it is missing or a line of it cannot be read.
"""

from __future__ import annotations

import collections
import json
import os
import socket
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Type, TypeVar

from pydantic import BaseModel, ValidationError

from isobench_ray.locks import LockBusy, file_lock
from isobench_ray.schema import Attempt, AttemptRecord, FailureCause, Judgement, Measurements, Scores, Session, Validation

M = TypeVar("M", bound=BaseModel)
STAGE_FILES: dict[str, tuple[str, type[BaseModel]]] = {
    "session": ("session.json", Session),
    "validation": ("validation.json", Validation),
    "measurements": ("measurements.json", Measurements),
    "scores": ("scores.json", Scores),
    "record": ("record.json", AttemptRecord),
    "judgement": ("judgement.json", Judgement),  # written by the driver after the record (soft metrics)
}


def write_atomic(path: Path, data: str | bytes) -> None:
    """Temp file in the same folder + fsync + rename: a reader sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunStore:
    """Stage results on disk. With `background_writes`, files are written in order by one writer thread
    (each still atomic and fsynced) while reads are served from memory, so a driver handling hundreds of
    results a minute does not wait on the disk; `flush()` waits for every pending write."""

    def __init__(self, run_dir: str | Path, background_writes: bool = False):
        self.root = Path(run_dir)
        self._cache: dict[tuple[str, str], BaseModel] = {}
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="run-store") if background_writes else None
        self._pending: collections.deque[Future] = collections.deque()
        self._finished: dict[str, dict] | None = None  # the index, read once: attempt id -> its line
        self._index_read = 0  # how far into index.jsonl that reading went

    def _write(self, path: Path, data: str | bytes) -> None:
        self._submit(write_atomic, path, data)

    def _submit(self, fn, *args) -> None:
        """Run a write now, or in order on the writer thread (`background_writes`)."""
        if self._writer is None:
            fn(*args)
        else:
            # one writer thread: writes finish in order, so the done ones are at the head (O(1) per write,
            # however far the disk is behind)
            while self._pending and self._pending[0].done():
                self._pending.popleft().result()  # a failed write (a full disk) stops the driver here, not silently
            self._pending.append(self._writer.submit(fn, *args))

    def flush(self) -> None:
        while self._pending:
            self._pending.popleft().result()  # re-raises a failed write (a full disk) instead of losing it silently

    def attempt_dir(self, attempt_id: str) -> Path:
        return self.root / "attempts" / attempt_id

    def write_model(self, path: Path, model: BaseModel) -> None:
        self._write(path, model.model_dump_json(indent=2))

    def write_json(self, name: str, data) -> None:
        self._write(self.root / name, json.dumps(data, indent=2, default=str))

    def read_json(self, name: str):
        path = self.root / name
        return json.loads(path.read_text()) if path.exists() else None

    def save_attempt(self, attempt: Attempt) -> None:
        path = self.attempt_dir(attempt.id) / "attempt.json"
        if not path.exists():
            self.write_model(path, attempt)

    def save_stage(self, attempt_id: str, stage: str, model: BaseModel, logs: dict[str, str] | None = None,
                   judged: AttemptRecord | None = None) -> None:
        """`judged`: with a judgement, the record it judged (the judges hold it; the driver's writer may not have
        written its file yet), for the attempt's row in the run's table."""
        # Logs first, the stage JSON last: the JSON is the marker that the stage is complete.
        for name, text in (logs or {}).items():
            self._write(self.attempt_dir(attempt_id) / name, text)
        self._cache[(attempt_id, stage)] = model
        path = self.attempt_dir(attempt_id) / STAGE_FILES[stage][0]
        if stage == "judgement":  # the file, then the attempt's row with it in the run's table (report/table.py)
            record = judged or self.load_stage(attempt_id, "record")
            self._submit(_write_judgement, path, model, record, self.root, self.stamp_of(attempt_id))
            self._submit(self._forget, attempt_id)
            return
        if stage != "record":
            self.write_model(path, model)
            return
        # the record, its table lines, then its index line, in one write: a line is never there without its file
        line = index_line(model, stamp=f"{time.time_ns():x}")
        self._remember(line)
        self._submit(_write_and_index, path, model, self.root, line)
        # then the attempt's models leave memory (a driver of 100,000 attempts keeps none): once written, in
        # order on the writer, so until then a read is still served from memory
        self._submit(self._forget, attempt_id)

    def _forget(self, attempt_id: str) -> None:
        for stage in STAGE_FILES:
            self._cache.pop((attempt_id, stage), None)

    def append_jsonl(self, name: str, data: dict) -> None:
        """A line of a run-level log (the driver's timings): appended in order with the other writes, not
        fsynced (nothing is rebuilt from it)."""
        self._submit(append_line, self.root / name, json.dumps(data, default=str) + "\n", False)

    def load_stage(self, attempt_id: str, stage: str) -> BaseModel | None:
        if (attempt_id, stage) in self._cache:
            return self._cache[(attempt_id, stage)]
        name, cls = STAGE_FILES[stage]
        model = read_model(self.attempt_dir(attempt_id) / name, cls)
        if model is not None:
            self._cache[(attempt_id, stage)] = model
        return model

    def clear_attempt(self, attempt_id: str, stages: tuple[str, ...] = tuple(STAGE_FILES)) -> None:
        self.flush()
        for stage in stages:
            self._cache.pop((attempt_id, stage), None)
            (self.attempt_dir(attempt_id) / STAGE_FILES[stage][0]).unlink(missing_ok=True)
        if "record" in stages:
            self._index({"id": attempt_id, "cleared": True})

    # -------------------------------------------------------------- the index of finished attempts

    def _remember(self, line: dict) -> None:
        if self._finished is not None:
            if line.get("cleared"):
                self._finished.pop(line["id"], None)
            else:
                self._finished[line["id"]] = line

    def _index(self, line: dict) -> None:
        self._remember(line)
        self._submit(append_line, self.root / INDEX, json.dumps(line) + "\n")

    def restamp(self, attempt_id: str) -> str:
        """A new stamp for a finished attempt's record (its table lines rebuilt: report/table.py), in the index."""
        line = {**self.finished()[attempt_id], "stamp": f"{time.time_ns():x}r"}
        self._index(line)
        return line["stamp"]

    def stamp_of(self, attempt_id: str, wait_s: float = 30.0) -> str:
        """The stamp of a finished attempt's record. A record another store wrote since this one read the index
        (the judges' store, beside the driver's) is found by reading only the lines added since; one whose
        line the driver's writer thread has not appended yet (the judges are handed the record as it is
        saved) is waited for, `wait_s` at most, then "" (a judged row the report ignores)."""
        from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

        def look() -> dict | None:
            if attempt_id not in self.finished():
                added, self._index_read = index_lines_after(self.root / INDEX, self._index_read)
                for found in added:
                    self._remember(found)
            return self.finished().get(attempt_id)

        try:
            line = Retrying(retry=retry_if_result(lambda found: found is None), wait=wait_fixed(0.05),
                            stop=stop_after_delay(wait_s))(look)
        except RetryError:
            return ""
        return line.get("stamp", "")

    def finished(self) -> dict[str, dict]:
        """Every finished attempt's index line (id, task_id, agent, status, failure_cause), read once: from
        index.jsonl, rebuilt from the folders' record.json files when it is missing or a line is unreadable
        (a torn last line after a crash is only dropped)."""
        if self._finished is None:
            self.flush()
            found, self._index_read = read_index(self.root / INDEX)
            if found is None:
                found = {r.attempt.id: index_line(r) for r in self._read_records()}
                text = "".join(json.dumps(line) + "\n" for line in found.values())
                write_atomic(self.root / INDEX, text)
                self._index_read = len(text.encode())
            self._finished = found
        return self._finished

    def _read_records(self) -> list[AttemptRecord]:
        return [r for path in sorted((self.root / "attempts").glob("*/record.json")) if (r := read_model(path, AttemptRecord))]

    def records(self) -> list[AttemptRecord]:
        """Every finished attempt, in plan order when a plan exists."""
        self.flush()
        plan = self.read_json("plan.json") or []
        order = {a["id"]: i for i, a in enumerate(plan)}
        return sorted(self._read_records(), key=lambda r: order.get(r.attempt.id, len(order)))

    def is_done(self, attempt_id: str, retry_failed: bool = False) -> bool:
        line = self.finished().get(attempt_id)
        if line is None:
            return False
        if (attempt_id, "record") not in self._cache and not (self.attempt_dir(attempt_id) / "record.json").exists():
            self._index({"id": attempt_id, "cleared": True})  # its folder lost the record (by hand, a full disk): redone
            return False
        if line["failure_cause"] == FailureCause.infra_error.value:
            return False  # the machine failed, not the attempt: always worth another go
        return not (retry_failed and line["failure_cause"] is not None)


INDEX = "index.jsonl"


def index_line(record: AttemptRecord, stamp: str = "") -> dict:
    """`stamp`: which write of the record this is; the table's lines (report/table.py) carry it too."""
    return {"id": record.attempt.id, "task_id": record.attempt.task_id, "agent": record.attempt.agent,
            "status": record.status.value, "failure_cause": record.failure_cause.value if record.failure_cause else None,
            "stamp": stamp}


def _write_and_index(path: Path, record: AttemptRecord, root: Path, line: dict) -> None:
    from isobench_ray.report.table import ROWS, RUNS, row_text, runs_text  # the table is the report's view

    write_atomic(path, record.model_dump_json(indent=2))
    append_line(root / RUNS, runs_text(record, line["stamp"]), sync=False)
    append_line(root / ROWS, row_text(record, None, line["stamp"]), sync=False)
    append_line(root / INDEX, json.dumps(line) + "\n")


def _write_judgement(path: Path, judgement: Judgement, record: AttemptRecord | None, root: Path, stamp: str) -> None:
    from isobench_ray.report.table import ROWS, row_text

    write_atomic(path, judgement.model_dump_json(indent=2))
    if record is not None:
        append_line(root / ROWS, row_text(record, judgement, stamp))


def append_line(path: Path, text: str, sync: bool = True) -> None:
    """Lines appended in one write (O_APPEND: they land whole or, after a crash, torn at the end), fsynced
    unless `sync` is off (lines a report can rebuild from the record they come from: the table's)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, text.encode())
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def read_index(path: Path) -> tuple[dict[str, dict] | None, int]:
    """The index's lines, the last per attempt winning and a `cleared` line removing it, and how many bytes
    were read; None when there is no index or a line cannot be read (torn by a crash mid-append, edited):
    then it is rebuilt from the folders."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, 0
    lines = [raw for raw in data.split(b"\n") if raw.strip()]
    try:  # one decoder call for the whole file (a call per line is most of `isobench status` at 100k)
        parsed = json.loads(b"[" + b",".join(lines) + b"]")
        keys = [line["id"] for line in parsed]
    except (ValueError, KeyError, TypeError):  # a torn or edited line
        return None, len(data)
    found: dict[str, dict] = {}
    for key, line in zip(keys, parsed):
        if line.get("cleared"):
            found.pop(key, None)
        else:
            found[key] = line
    return found, len(data)


def index_lines_after(path: Path, offset: int) -> tuple[list[dict], int]:
    """The index's whole lines after `offset` (bytes), in order, and where they end; unreadable ones skipped."""
    try:
        with path.open("rb") as stream:
            stream.seek(offset)
            data = stream.read()
    except FileNotFoundError:
        return [], offset
    whole = data[:data.rfind(b"\n") + 1]
    lines = []
    for raw in whole.split(b"\n"):
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict) and "id" in line:
            lines.append(line)
    return lines, offset + len(whole)


def read_model(path: Path, cls: Type[M]) -> M | None:
    """A stage file, or None when there is none. One that cannot be read (truncated by a full disk, edited
    by hand, written by an older version) is named on stderr and moved aside, so its stage is redone:
    one bad file never stops a run, a report or a status."""
    try:
        return cls.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (ValidationError, UnicodeDecodeError, OSError) as exc:
        aside = path.with_name(f"{path.name}.unreadable-{time.strftime('%Y%m%dT%H%M%S')}")
        try:
            path.replace(aside)
        except OSError:
            pass
        first = str(exc).splitlines()[0][:200]
        print(f"isobench: {path} cannot be read ({first}); moved to {aside.name}, its stage will be redone", file=sys.stderr)
        return None


class RunLock:
    """One driver per run directory: a second one is refused with the holder's pid and host (the lock is
    the kernel's, so it goes with the process that held it, however that process ended)."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / ".lock"
        self._held: ExitStack | None = None

    def __enter__(self) -> "RunLock":
        held = ExitStack()
        try:
            fh = held.enter_context(file_lock(self.path, wait=False))
        except LockBusy:
            holder = self.path.read_text().strip() or "unknown"
            raise RunDirBusy(f"{self.path.parent} is in use by another isobench driver ({holder}); wait for it, "
                             f"stop it, or choose another --out") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        fh.flush()
        self._held = held
        return self

    @staticmethod
    def holder(run_dir: str | Path) -> str | None:
        """Who holds the run now ("pid N on HOST, since ..."), or None when no driver does (it finished, or
        it was stopped or killed: the kernel let its lock go). Asked on the node that runs the driver."""
        path = Path(run_dir) / ".lock"
        if not path.exists():
            return None
        try:
            with file_lock(path, wait=False):
                return None
        except LockBusy:
            return path.read_text().strip() or "unknown"

    def __exit__(self, *exc) -> None:
        if self._held is not None:
            self._held.close()
            self._held = None


class RunDirBusy(RuntimeError):
    pass
