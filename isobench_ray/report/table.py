"""The run's table beside its records, so a report reads two files instead of every record (docs/scale.md):

    rows.jsonl   one attempts-frame row per record written, and again once it is judged (frames.attempt_row)
    runs.jsonl   the rows of its benchmark runs, once per record written (frames.run_rows)

The store appends both with each record (and rows.jsonl with each judgement), before the record's index
line. Every line carries the record's stamp, which its index line carries too: a line of an earlier record
of a redone attempt, or of a record whose index line never landed, is ignored. The record folders stay the
source of truth: what the table lacks for a finished attempt is rebuilt from its record (`repair`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable

import polars as pl

from isobench_ray.report.frames import _RUNS_SCHEMA, _SCHEMA, attempt_row, run_rows
from isobench_ray.schema import AttemptRecord, Judgement

ROWS, RUNS = "rows.jsonl", "runs.jsonl"
_ROW_SCHEMA = {**{c: t for c, t in _SCHEMA.items() if c not in ("agent_model", "commit_date")}, "stamp": pl.Utf8}
_RUN_SCHEMA = {**_RUNS_SCHEMA, "stamp": pl.Utf8}


def _finite(row: dict) -> dict:
    # JSON has no inf or NaN that Polars reads back: a non-finite number is kept as null (no speedup)
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}


def row_text(record: AttemptRecord, judgement: Judgement | None, stamp: str) -> str:
    return json.dumps(_finite(attempt_row(record, judgement)) | {"stamp": stamp}) + "\n"


def runs_text(record: AttemptRecord, stamp: str) -> str:
    return "".join(json.dumps(_finite(r) | {"stamp": stamp}) + "\n" for r in run_rows(record))


def _live(finished: dict[str, dict]) -> pl.DataFrame:
    return pl.DataFrame({"attempt_id": list(finished), "stamp": [str(line.get("stamp", "")) for line in finished.values()]},
                        schema={"attempt_id": pl.Utf8, "stamp": pl.Utf8})


def read_rows(root: Path, finished: dict[str, dict]) -> pl.DataFrame:
    """The latest row of every finished attempt that has one (its record's stamp), in file order."""
    path = root / ROWS
    if not path.exists() or not path.stat().st_size:
        return pl.DataFrame(schema=_ROW_SCHEMA)
    rows = pl.scan_ndjson(path, schema=_ROW_SCHEMA, ignore_errors=True).with_row_index("_line")
    return (rows.join(_live(finished).lazy(), on=["attempt_id", "stamp"], how="semi")  # a join keeps no order
            .sort("_line").unique("attempt_id", keep="last", maintain_order=True).drop("_line").collect())


def sink_runs(root: Path, finished: dict[str, dict], target: Path) -> None:
    """runs.parquet from runs.jsonl, streamed: the runs of each finished attempt's latest record."""
    path = root / RUNS
    if not path.exists() or not path.stat().st_size:
        pl.DataFrame(schema=_RUNS_SCHEMA).write_parquet(target)
        return
    (pl.scan_ndjson(path, schema=_RUN_SCHEMA, ignore_errors=True)
     .join(_live(finished).lazy(), on=["attempt_id", "stamp"], how="semi")
     .drop("stamp").sink_parquet(target))


def repair(store, have: Iterable[str]) -> int:
    """Append the rows and runs of finished attempts the table lacks (a run written before the table existed,
    or lines lost to a crash), from their records, under a new stamp (so that runs lines of the old one, if
    any landed, are not counted twice). Returns how many."""
    finished, have = store.finished(), set(have)
    missing = [a for a in finished if a not in have]
    with (store.root / ROWS).open("a") as rows, (store.root / RUNS).open("a") as runs:
        for attempt_id in missing:
            record = store.load_stage(attempt_id, "record")
            if record is None:
                continue
            stamp = store.restamp(attempt_id)
            runs.write(runs_text(record, stamp))
            rows.write(row_text(record, store.load_stage(attempt_id, "judgement"), stamp))
    store.flush()
    return len(missing)
