"""`isobench regrade`: every score of a finished run again, from its stored samples, under one verdict policy.

No GPU, no engine, no Ray: it reads each attempt's folder (record.json, which holds the measurements, and
judgement.json; measurements.json only for a record without them), recomputes the scores (scoring/hard.py)
with the policy's verdict (scoring/policies.py) in both class columns (`hard_class` and `hard_class_ci`, so
hard_pass, quadrants and success rates all follow the policy), and writes
a table with attempts.parquet's columns to RUN_DIR/regrade/<policy>.parquet. The run's own files are only
read: unlike the run store, a file that does not fit today's models is not moved aside; fields an older
version wrote and this one dropped are ignored, fields it lacked take their defaults.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import polars as pl
from pydantic import BaseModel, ValidationError

from isobench_ray.report.frames import attempts_frame
from isobench_ray.schema import AttemptRecord, HardClass, Judgement, Measurements
from isobench_ray.scoring import plausibility
from isobench_ray.scoring.hard import score
from isobench_ray.scoring.policies import POLICIES, Grading
from isobench_ray.scoring.stats import DEFAULT_METHOD
from isobench_ray.scoring.verdicts import Verdict

M = TypeVar("M", bound=BaseModel)
ROWS_AT_ONCE = 1000


@dataclass(frozen=True)
class Flip:
    attempt_id: str
    own: str  # the run's own verdict under the same rule (hard_class_ci for strict, hard_class otherwise)
    new: str
    reason: str


@dataclass
class Regraded:
    policy: str
    frame: pl.DataFrame
    out: Path
    flips: list[Flip] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # attempts whose files could not be read


def _drop(data, loc: tuple) -> bool:
    for key in loc[:-1]:
        data = data[key]
    if isinstance(data, dict) and loc and loc[-1] in data:
        del data[loc[-1]]
        return True
    return False


def read_lenient(path: Path, cls: type[M]) -> M | None:
    """A stored model, read without touching the file: keys this version does not know are dropped (an older
    or newer writer); None when the file is absent or still does not fit."""
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    for _ in range(100):
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            extra = [e["loc"] for e in exc.errors() if e["type"] == "extra_forbidden"]
            if not extra or not all(_drop(data, tuple(loc)) for loc in extra):
                return None
    return None


def grading_for(run_dir: Path, margin: float | None = None, method: str | None = None) -> tuple[Grading, float]:
    """The run's own grading settings (run.json), `margin` and `method` overriding; and its accuracy_drop_max."""
    run_json = run_dir / "run.json"
    settings = (json.loads(run_json.read_text()).get("settings") or {}) if run_json.exists() else {}
    grading = Grading(margin=margin if margin is not None else float(settings.get("hard_band_pct", 5.0)),
                      confidence=float(settings.get("confidence", 0.95)),
                      min_samples=int(settings.get("min_samples", 5)), method=method or DEFAULT_METHOD)
    return grading, float(settings.get("accuracy_drop_max", 0.05))


def regrade_record(record: AttemptRecord, measurements: Measurements | None, policy: str, grading: Grading,
                   accuracy_drop_max: float = 0.05) -> tuple[AttemptRecord, Verdict]:
    """One attempt under `policy`: scores recomputed from the samples, the policy's verdict in both classes."""
    if measurements is None:
        return record, Verdict(HardClass.failed, None, f"failed: no measurements ({record.failure_stage or 'not measured'})")
    verdict = POLICIES[policy](measurements, grading)
    scores = score(measurements, grading.margin, grading.confidence, grading.min_samples, accuracy_drop_max,
                   method=grading.method)
    scores = scores.model_copy(update={"hard_class": verdict.hard_class, "hard_class_ci": verdict.hard_class,
                                       "verdict_cause": verdict.cause, "verdict_reason": verdict.reason})
    if scores.implausible:  # no policy counts implausible numbers (scoring/plausibility.py)
        scores = plausibility.flag(scores, scores.implausible)
        verdict = Verdict(scores.hard_class_ci, scores.verdict_cause, scores.verdict_reason)
    return record.model_copy(update={"measurements": measurements, "scores": scores}), verdict


def _own(record: AttemptRecord, policy: str) -> str:
    if record.scores is None:
        return HardClass.failed.value
    return (record.scores.hard_class_ci if policy == "strict" else record.scores.hard_class).value


def _write_parquet(frame: pl.DataFrame, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    frame.write_parquet(tmp)
    tmp.replace(out)


def regrade(run_dir: str | Path, policy: str = "strict", margin: float | None = None, out: str | Path | None = None,
            method: str | None = None) -> Regraded:
    """Every finished attempt of `run_dir` under `policy`; writes the table and returns it with the flips."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}: one of {', '.join(POLICIES)}")
    root = Path(run_dir)
    grading, drop_max = grading_for(root, margin, method)
    plan = {a["id"]: i for i, a in enumerate(json.loads((root / "plan.json").read_text()))} if (root / "plan.json").exists() else {}
    frames, chunk, judgements, flips, skipped = [], [], {}, [], []
    for folder in sorted(p for p in (root / "attempts").glob("*") if p.is_dir()):
        record = read_lenient(folder / "record.json", AttemptRecord)
        if record is None:
            if (folder / "record.json").exists():
                skipped.append(folder.name)
            continue
        # the record carries its measurements whole; measurements.json (the same samples) only for one that does not
        measurements = record.measurements or read_lenient(folder / "measurements.json", Measurements)
        regraded, verdict = regrade_record(record, measurements, policy, grading, drop_max)
        chunk.append(regraded)
        if (judgement := read_lenient(folder / "judgement.json", Judgement)) is not None:
            judgements[record.attempt.id] = judgement
        if verdict.hard_class.value != _own(record, policy):
            flips.append(Flip(record.attempt.id, _own(record, policy), verdict.hard_class.value, verdict.reason))
        if len(chunk) == ROWS_AT_ONCE:  # rows, not records, are kept: 100,000 records with their samples would not fit
            frames.append(attempts_frame(chunk, judgements))
            chunk, judgements = [], {}
    frames.append(attempts_frame(chunk, judgements))
    frame = pl.concat(frames)
    order = [plan.get(aid, len(plan)) for aid in frame["attempt_id"]]
    frame = frame.with_columns(pl.Series("_order", order)).sort("_order", "attempt_id").drop("_order")
    target = Path(out) if out else root / "regrade" / f"{policy}.parquet"
    _write_parquet(frame, target)
    return Regraded(policy, frame, target, flips, skipped)
