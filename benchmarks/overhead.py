"""Harness overhead on the demo suite: what share of each attempt's wall time is spent outside agent
sessions and benchmark runs (planning, trees, validation, servers, records, scheduling)?

    .venv/bin/python benchmarks/overhead.py [--tasks 2] [--agents human,noop] [--out DIR]

Runs the demo suite (the first --tasks tasks) with the given agents on a local Ray cluster, from a cold
start (a fresh run directory and cache), then reads every stage's own clock (agent time in the session,
validation, tree preparation, server starts and benchmark runs in the 3-way benchmark) and the driver's
clock (when each stage was submitted and came back, when each record was written). Prints one row per
attempt and the totals, measured in this one run.

Attempt wall time = first submission to record written. Scheduling = time a stage spent between the
driver and the worker beyond the stage's own duration (Ray dispatch, serialization). Queued = the rest of
the wall time: waiting for a free benchmark slot (on a CPU-only machine one benchmark runs at a time).
`outside_pct` is the share of wall time outside agent sessions and benchmark runs, queueing included;
`harness_pct` leaves the queue out: the harness's own cost per attempt while it is being worked on.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import polars as pl
import yaml

from isobench_ray import demo, runner
from isobench_ray.agents import parse_agents
from isobench_ray.config import Settings
from isobench_ray.store import RunStore


def rows(out: Path) -> list[dict]:
    timings = {}
    for line in (out / "timings.jsonl").read_text().splitlines():  # the driver's clock, a line per attempt
        clock = json.loads(line)
        timings[clock.pop("attempt")] = clock
    result = []
    for rec in RunStore(out).records():
        clock = timings.get(rec.attempt.id, {})
        s, v, m = rec.session, rec.validation, rec.measurements
        agent_s = s.agent_s if s else 0.0
        runs_s = sum(r.duration_s for a in m.arms for r in a.runs) if m else 0.0
        stage_s = {"session": s.duration_s if s else 0.0, "validation": v.duration_s if v else 0.0,
                   "measurements": m.duration_s if m else 0.0}
        submitted = [c[0] for c in clock.values() if c]
        wall = (clock["record"][1] - min(submitted)) if "record" in clock and submitted else 0.0
        scheduling = sum(max(0.0, c[1] - c[0] - stage_s[st]) for st, c in clock.items() if st in stage_s and len(c) == 2)
        result.append({
            "attempt": f"{rec.attempt.task_id}/{rec.attempt.agent}", "wall_s": wall, "agent_s": agent_s, "bench_runs_s": runs_s,
            "session_trees_s": stage_s["session"] - agent_s, "validation_s": stage_s["validation"],
            "bench_prepare_s": m.prepare_s if m else 0.0, "servers_s": m.server_s if m else 0.0,
            "bench_other_s": (m.duration_s - m.prepare_s - m.server_s - runs_s) if m else 0.0,
            "record_s": clock["record"][1] - clock["record"][0] if "record" in clock else 0.0,
            "scheduling_s": scheduling,
        })
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2, help="the first N demo tasks")
    parser.add_argument("--agents", default="human,noop")
    parser.add_argument("--out", default=None, help="run directory (default: a temporary one)")
    args = parser.parse_args()

    demo.build_repo()
    base = Path(args.out or tempfile.mkdtemp(prefix="isobench-overhead-"))
    settings = Settings(cache_dir=str(base / "cache"), work_dir=str(base / "work"), rounds=3, max_rounds=3)
    task_ids = [t["id"] for t in yaml.safe_load(demo.TASKS_FILE.read_text())["tasks"]][: args.tasks]
    started = time.monotonic()
    runner.run(str(demo.TASKS_FILE), parse_agents(args.agents), base / "run", settings, task_ids=task_ids, show_progress=False)
    elapsed = time.monotonic() - started

    df = pl.DataFrame(rows(base / "run"))
    overhead_cols = ["session_trees_s", "validation_s", "bench_prepare_s", "servers_s", "bench_other_s", "record_s", "scheduling_s"]
    work = pl.sum_horizontal("agent_s", "bench_runs_s", *overhead_cols)
    df = df.with_columns(queued_s=pl.col("wall_s") - work)
    totals = df.select(pl.lit("TOTAL").alias("attempt"), *[pl.col(c).sum() for c in df.columns if c.endswith("_s")])
    shares = {"outside_pct": 100 * (1 - (pl.col("agent_s") + pl.col("bench_runs_s")) / pl.col("wall_s")),
              "harness_pct": 100 * (1 - (pl.col("agent_s") + pl.col("bench_runs_s")) / work)}
    df, totals = df.with_columns(**shares), totals.with_columns(**shares)
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=250, float_precision=2, tbl_hide_dataframe_shape=True,
                   tbl_hide_column_data_types=True):
        print(f"\nOverhead on {len(task_ids)} demo tasks x {args.agents} ({elapsed:.0f} s for the whole run, "
              f"run dir {base / 'run'}); seconds per attempt:\n")
        print(pl.concat([df, totals], how="diagonal"))
        share = totals.select(*[(100 * pl.col(c) / pl.col("wall_s")).alias(c.removesuffix("_s") + "_%")
                                for c in [*overhead_cols, "queued_s"]])
        print("\nShare of all attempts' wall time, per source of overhead and the queue for the slot (%):")
        print(share)


if __name__ == "__main__":
    main()
