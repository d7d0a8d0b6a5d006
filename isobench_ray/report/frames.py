"""Attempt records -> the report's two frames: attempts.parquet (one row per attempt) and runs.parquet (one
row per benchmark run of every arm). Everything the summaries, plots and pages show is read from these."""

from __future__ import annotations

import polars as pl

from isobench_ray.hardware import throttled
from isobench_ray.schema import AttemptRecord, Judgement
from isobench_ray.scoring.plausibility import hack_flags
from isobench_ray.scoring.soft import hard_pass, hard_pass_ci, quadrant, quadrant_ci, soft_pass
from isobench_ray.text import error_line

COLUMNS = ["task_id", "agent", "rollout", "attempt_id", "status", "failure_cause", "failure_stage", "primary_metric",
           "higher_is_better", "baseline_value", "human_value", "agent_value", "speedup_vs_baseline",
           "human_speedup_vs_baseline", "agent_vs_human_pct", "hard_class", "speedup_ci_low", "speedup_ci_high",
           "human_speedup_ci_low", "human_speedup_ci_high", "agent_vs_human_ci_low_pct", "agent_vs_human_ci_high_pct",
           "noise_pct", "band_pct", "hard_class_ci", "margin_pct", "verdict_cause", "verdict_reason", "interval_method",
           "not_discriminative", "rounds", "n_samples", "throttled_samples", "disturbed_samples", "slot", "agent_sandbox", "detail",
           # soft metrics and correctness (scoring/soft.py)
           "repo", "correctness", "bottleneck_target", "approach_comparison", "judges", "judge_rule_based",
           "judge_agreement", "judge_error", "judge_tokens", "judge_cost_usd", "hack_flags", "hacked", "soft_pass",
           "hard_pass", "hard_pass_ci", "quadrant", "quadrant_ci", "bench_s", "slot_s", "agent_model", "agent_steps", "agent_tokens",
           "agent_cost_usd", "commit_date"]
_SCHEMA = {c: pl.Utf8 for c in COLUMNS} | {
    "rollout": pl.Int64, "higher_is_better": pl.Boolean, "n_samples": pl.Int64, "rounds": pl.Int64, "throttled_samples": pl.Int64,
    "disturbed_samples": pl.Int64,
    "not_discriminative": pl.Boolean, "judge_rule_based": pl.Boolean, "hacked": pl.Boolean, "soft_pass": pl.Boolean,
    "hard_pass": pl.Boolean, "hard_pass_ci": pl.Boolean, "judge_tokens": pl.Int64, "judge_cost_usd": pl.Float64,
    "judge_agreement": pl.Float64, "bench_s": pl.Float64, "slot_s": pl.Float64, "agent_steps": pl.Int64, "agent_tokens": pl.Int64,
    "agent_cost_usd": pl.Float64,
    **{c: pl.Float64 for c in ["baseline_value", "human_value", "agent_value", "speedup_vs_baseline",
                               "human_speedup_vs_baseline", "agent_vs_human_pct", "speedup_ci_low", "speedup_ci_high",
                               "human_speedup_ci_low", "human_speedup_ci_high", "agent_vs_human_ci_low_pct", "agent_vs_human_ci_high_pct",
                               "noise_pct", "band_pct", "margin_pct"]},
}


def _soft(rec: AttemptRecord, j: Judgement | None) -> dict:
    # the strict twins keep `inconclusive` apart: hard_pass_ci is null there, quadrant_ci says "inconclusive"
    soft, hard, hard_ci = soft_pass(j), hard_pass(rec.scores), hard_pass_ci(rec.scores)
    # the record's own flags stand without a judgement (an attempt not judged, or judged before it was flagged)
    flags = list(dict.fromkeys([*(j.hack_flags if j else []), *hack_flags(rec)]))
    costs = [v.cost_usd for v in j.votes if v.cost_usd is not None] if j else []
    return {
        "repo": rec.attempt.repo or None,
        "correctness": rec.scores.correctness if rec.scores else "unchecked",
        "bottleneck_target": j.bottleneck_target if j else None,
        "approach_comparison": j.approach_comparison if j else None,
        "judges": ", ".join(dict.fromkeys(v.judge for v in j.votes)) if j else None,
        "judge_rule_based": j.rule_based if j else None,
        "judge_agreement": j.agreement if j else None, "judge_error": j.judge_error if j else None,
        "judge_tokens": sum(v.tokens for v in j.votes) if j else None,
        "judge_cost_usd": sum(costs) if costs else None,
        "hack_flags": ", ".join(flags) if j or flags else None, "hacked": bool(flags) if j or flags else None,
        "soft_pass": soft, "hard_pass": hard, "hard_pass_ci": hard_ci,
        "quadrant": quadrant(soft, hard), "quadrant_ci": quadrant_ci(soft, hard_ci),
    }


def attempt_row(rec: AttemptRecord, judgement: Judgement | None = None) -> dict:
    """One attempt's row, all but the columns a run's files give (agent_model, commit_date)."""
    s, m = rec.scores, rec.measurements
    agent_arm = m.arm("agent") if m else None
    return {
        "task_id": rec.attempt.task_id, "agent": rec.attempt.agent, "rollout": rec.attempt.rollout,
        "attempt_id": rec.attempt.id, "status": rec.status.value,
        "failure_cause": rec.failure_cause.value if rec.failure_cause else None, "failure_stage": rec.failure_stage,
        "primary_metric": s.primary_metric if s else (m.primary_metric if m else None),
        "higher_is_better": s.higher_is_better if s else None,
        "baseline_value": s.baseline_value if s else None, "human_value": s.human_value if s else None,
        "agent_value": s.agent_value if s else None, "speedup_vs_baseline": s.speedup_vs_baseline if s else None,
        "human_speedup_vs_baseline": s.human_speedup_vs_baseline if s else None,
        "agent_vs_human_pct": s.agent_vs_human_pct if s else None,
        "hard_class": s.hard_class.value if s else "failed",
        "speedup_ci_low": s.speedup_ci[0] if s and s.speedup_ci else None,
        "speedup_ci_high": s.speedup_ci[1] if s and s.speedup_ci else None,
        "human_speedup_ci_low": s.human_speedup_ci[0] if s and s.human_speedup_ci else None,
        "human_speedup_ci_high": s.human_speedup_ci[1] if s and s.human_speedup_ci else None,
        "agent_vs_human_ci_low_pct": s.agent_vs_human_ci_pct[0] if s and s.agent_vs_human_ci_pct else None,
        "agent_vs_human_ci_high_pct": s.agent_vs_human_ci_pct[1] if s and s.agent_vs_human_ci_pct else None,
        "noise_pct": s.noise_pct if s else None, "band_pct": s.band_pct if s else None,
        "hard_class_ci": s.hard_class_ci.value if s else "failed",
        "margin_pct": s.margin_pct if s else None,
        "verdict_cause": s.verdict_cause.value if s and s.verdict_cause else None,
        "verdict_reason": (s.verdict_reason or None) if s else None,
        "interval_method": s.interval_method if s else None,
        "not_discriminative": s.not_discriminative if s else None, "rounds": s.rounds if s else None,
        "n_samples": len(agent_arm.samples(m.primary_metric)) if agent_arm else 0,
        "throttled_samples": sum(throttled({**r.telemetry.get("start", {}), **r.telemetry.get("end", {})})
                                 for a in m.arms for r in a.runs) if m else 0,
        "disturbed_samples": sum(r.disturbed for a in m.arms for r in a.runs) if m else 0,
        "slot": m.slot if m else None, "agent_sandbox": rec.session.sandbox if rec.session else None, "detail": error_line(rec.detail) or None,
        **_soft(rec, judgement),
        "bench_s": m.duration_s if m else None,  # the 3-way benchmark stage's time
        "slot_s": (m.slot_s or m.duration_s) if m else None,  # the time it held its slot (older records: the stage's)
        "agent_steps": rec.session.steps if rec.session else None, "agent_tokens": rec.session.tokens if rec.session else None,
        "agent_cost_usd": rec.session.cost_usd if rec.session else None,
    }


def attempts_frame(records: list[AttemptRecord], judgements: dict[str, Judgement] | None = None,
                   models: dict[str, str] | None = None, dates: dict[str, str] | None = None) -> pl.DataFrame:
    """One row per attempt; `models`: each agent's model (run.json's agents, `agent_models`); `dates`: each
    task's commit date (tasks.json, `task_dates`)."""
    judgements, models, dates = judgements or {}, models or {}, dates or {}
    rows = [attempt_row(r, judgements.get(r.attempt.id)) | {"agent_model": models.get(r.attempt.agent),
                                                      "commit_date": dates.get(r.attempt.task_id)} for r in records]
    return pl.DataFrame(rows, schema=_SCHEMA)


def task_dates(tasks_json: list | None) -> dict[str, str]:
    """Each task's commit date, where it has one (tasks.json)."""
    return {t["id"]: t["commit_date"] for t in (tasks_json or []) if isinstance(t, dict) and t.get("commit_date")}


def agent_models(run_json: dict | None) -> dict[str, str]:
    """Each agent's model as its spec names it (litellm and CLI agents: `model`; replays: `model_name`)."""
    return {a["name"]: a.get("model") or a.get("model_name") or a.get("kind", "")
            for a in (run_json or {}).get("agents", []) if a.get("name")}


_RUNS_SCHEMA = {"attempt_id": pl.Utf8, "task_id": pl.Utf8, "agent": pl.Utf8, "arm": pl.Utf8, "round": pl.Int64,
                "index": pl.Int64, "warmup": pl.Boolean, "sample": pl.Boolean, "primary_metric": pl.Utf8,
                "value": pl.Float64, "source": pl.Utf8, "duration_s": pl.Float64, "server_start_s": pl.Float64,
                "outside_load": pl.Float64, "disturbed": pl.Boolean, "failure_cause": pl.Utf8,
                "server_cpus": pl.Utf8, "client_cpus": pl.Utf8, "command": pl.Utf8, "server_command": pl.Utf8}


def runs_frame(records: list[AttemptRecord]) -> pl.DataFrame:
    """One row per benchmark run of every arm (warm-ups and disturbed runs included, marked): the raw samples
    behind each speedup, with the exact commands and the server's start time."""
    return pl.DataFrame([row for rec in records for row in run_rows(rec)], schema=_RUNS_SCHEMA)


def run_rows(rec: AttemptRecord) -> list[dict]:
    """runs_frame's rows of one attempt."""
    rows = []
    m = rec.measurements
    for arm in (m.arms if m else []):
        for index, run in enumerate(arm.runs):
            value = run.metrics.get(m.primary_metric)
            rows.append({
                "attempt_id": rec.attempt.id, "task_id": rec.attempt.task_id, "agent": rec.attempt.agent,
                "arm": arm.arm, "round": run.round, "index": index, "warmup": run.warmup, "sample": run.is_sample,
                "primary_metric": m.primary_metric, "value": None if value is None else float(value),
                "source": run.metrics.get("source"), "duration_s": run.duration_s, "server_start_s": run.server_start_s,
                "outside_load": run.outside_load, "disturbed": run.disturbed,
                "failure_cause": run.failure_cause.value if run.failure_cause else None,
                "server_cpus": ",".join(map(str, arm.server_cpus)), "client_cpus": ",".join(map(str, arm.client_cpus)),
                "command": run.command, "server_command": run.server_command})
    return rows
