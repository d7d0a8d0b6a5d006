"""Stage 6, the report: attempt records -> attempts.parquet, summary tables (Polars), report.md and report.html.

The frames come from report/summary.py, the plots from report/plots.py, the page from report/html.py;
report/hub.py publishes the three files as a Hugging Face dataset."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from isobench_ray.hardware import throttled
from isobench_ray.report.html import Section
from isobench_ray.report.summary import RULE_BASED, summary_tables
from isobench_ray.schema import AttemptRecord, Judgement
from isobench_ray.scoring.soft import hard_pass, quadrant, soft_pass
from isobench_ray.store import RunStore, write_atomic

COLUMNS = ["task_id", "agent", "rollout", "attempt_id", "status", "failure_cause", "failure_stage", "primary_metric",
           "higher_is_better", "baseline_value", "human_value", "agent_value", "speedup_vs_baseline",
           "human_speedup_vs_baseline", "agent_vs_human_pct", "hard_class", "speedup_ci_low", "speedup_ci_high",
           "human_speedup_ci_low", "human_speedup_ci_high", "agent_vs_human_ci_low_pct", "agent_vs_human_ci_high_pct",
           "noise_pct", "band_pct", "hard_class_ci",
           "not_discriminative", "rounds", "n_samples", "throttled_samples", "disturbed_samples", "slot", "agent_sandbox", "detail",
           # soft metrics and correctness (scoring/soft.py)
           "repo", "correctness", "bottleneck_target", "approach_comparison", "judges", "judge_rule_based",
           "judge_agreement", "judge_error", "judge_tokens", "judge_cost_usd", "hack_flags", "hacked", "soft_pass",
           "hard_pass", "hard_pass_ci", "quadrant", "quadrant_ci", "bench_s", "agent_steps", "agent_tokens", "agent_cost_usd"]
_SCHEMA = {c: pl.Utf8 for c in COLUMNS} | {
    "rollout": pl.Int64, "higher_is_better": pl.Boolean, "n_samples": pl.Int64, "rounds": pl.Int64, "throttled_samples": pl.Int64, "disturbed_samples": pl.Int64,
    "not_discriminative": pl.Boolean, "judge_rule_based": pl.Boolean, "hacked": pl.Boolean, "soft_pass": pl.Boolean,
    "hard_pass": pl.Boolean, "hard_pass_ci": pl.Boolean, "judge_tokens": pl.Int64, "judge_cost_usd": pl.Float64,
    "judge_agreement": pl.Float64, "bench_s": pl.Float64, "agent_steps": pl.Int64, "agent_tokens": pl.Int64,
    "agent_cost_usd": pl.Float64,
    **{c: pl.Float64 for c in ["baseline_value", "human_value", "agent_value", "speedup_vs_baseline",
                               "human_speedup_vs_baseline", "agent_vs_human_pct", "speedup_ci_low", "speedup_ci_high",
                               "human_speedup_ci_low", "human_speedup_ci_high", "agent_vs_human_ci_low_pct", "agent_vs_human_ci_high_pct", "noise_pct", "band_pct"]},
}


def _soft(rec: AttemptRecord, j: Judgement | None) -> dict:
    soft, hard, hard_ci = soft_pass(j), hard_pass(rec.scores), hard_pass(rec.scores, strict=True)
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
        "hack_flags": ", ".join(j.hack_flags) if j else None, "hacked": bool(j.hack_flags) if j else None,
        "soft_pass": soft, "hard_pass": hard, "hard_pass_ci": hard_ci,
        "quadrant": quadrant(soft, hard), "quadrant_ci": quadrant(soft, hard_ci),
    }


def _row(rec: AttemptRecord, judgement: Judgement | None = None) -> dict:
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
        "not_discriminative": s.not_discriminative if s else None, "rounds": s.rounds if s else None,
        "n_samples": len(agent_arm.samples(m.primary_metric)) if agent_arm else 0,
        "throttled_samples": sum(throttled({**r.telemetry.get("start", {}), **r.telemetry.get("end", {})})
                                 for a in m.arms for r in a.runs) if m else 0,
        "disturbed_samples": sum(r.disturbed for a in m.arms for r in a.runs) if m else 0,
        "slot": m.slot if m else None, "agent_sandbox": rec.session.sandbox if rec.session else None, "detail": (rec.detail or "").strip().splitlines()[0][:160] if rec.detail else None,
        **_soft(rec, judgement),
        "bench_s": m.duration_s if m else None,  # the slot time the 3-way benchmark took
        "agent_steps": rec.session.steps if rec.session else None, "agent_tokens": rec.session.tokens if rec.session else None,
        "agent_cost_usd": rec.session.cost_usd if rec.session else None,
    }


def attempts_frame(records: list[AttemptRecord], judgements: dict[str, Judgement] | None = None) -> pl.DataFrame:
    judgements = judgements or {}
    return pl.DataFrame([_row(r, judgements.get(r.attempt.id)) for r in records], schema=_SCHEMA)


_RUNS_SCHEMA = {"attempt_id": pl.Utf8, "task_id": pl.Utf8, "agent": pl.Utf8, "arm": pl.Utf8, "round": pl.Int64,
                "index": pl.Int64, "warmup": pl.Boolean, "sample": pl.Boolean, "primary_metric": pl.Utf8,
                "value": pl.Float64, "source": pl.Utf8, "duration_s": pl.Float64, "server_start_s": pl.Float64,
                "outside_load": pl.Float64, "disturbed": pl.Boolean, "failure_cause": pl.Utf8,
                "server_cpus": pl.Utf8, "client_cpus": pl.Utf8, "command": pl.Utf8, "server_command": pl.Utf8}


def runs_frame(records: list[AttemptRecord]) -> pl.DataFrame:
    """One row per benchmark run of every arm (warm-ups and disturbed runs included, marked): the raw samples
    behind each speedup, with the exact commands and the server's start time."""
    rows = []
    for rec in records:
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
    return pl.DataFrame(rows, schema=_RUNS_SCHEMA)


def summary_by_agent(df: pl.DataFrame) -> pl.DataFrame:
    return (
        df.group_by("agent", maintain_order=True)
        .agg(
            pl.len().alias("attempts"),
            (pl.col("status") == "success").sum().alias("measured"),
            (pl.col("hard_class") == "beats").sum().alias("beats"),
            (pl.col("hard_class") == "similar").sum().alias("similar"),
            (pl.col("hard_class") == "worse").sum().alias("worse"),
            (pl.col("hard_class") == "failed").sum().alias("failed"),
            (pl.col("hard_class_ci") == "inconclusive").sum().alias("inconclusive_ci"),
            pl.col("speedup_vs_baseline").median().round(3).alias("median_speedup"),
            pl.col("agent_vs_human_pct").median().round(1).alias("median_vs_human_pct"),
        )
    )


def _markdown(df: pl.DataFrame) -> str:
    """A GitHub markdown table, written by Polars (pipes in text escaped so cells stay cells)."""
    df = df.with_columns(pl.col(pl.Utf8).str.replace_all("|", "\\|", literal=True))
    with pl.Config(tbl_formatting="MARKDOWN", tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True,
                   tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=200, float_precision=3, tbl_width_chars=10_000):
        return str(df)


def _sections(df: pl.DataFrame, judgements: list[Judgement]) -> tuple[list[Section], dict[str, pl.DataFrame]]:
    """Every section of report.md and report.html, in order (the same tables in both), and the tables by name."""
    t = summary_tables(df, judgements)
    per_attempt = df.select("task_id", "agent", "status", "failure_cause", "primary_metric", "human_speedup_vs_baseline",
                            "speedup_vs_baseline", "speedup_ci_low", "speedup_ci_high", "agent_vs_human_pct",
                            "hard_class", "hard_class_ci", "noise_pct", "rounds")
    flagged = df.filter(pl.col("not_discriminative")).get_column("task_id").unique().sort().to_list()
    unsandboxed = df.filter(pl.col("agent_sandbox") == "none").get_column("attempt_id").to_list()
    failures = (df.filter(pl.col("failure_cause").is_not_null())
                .group_by("failure_stage", "failure_cause").agg(pl.len().alias("attempts"), pl.col("agent").unique().sort().str.join(", ").alias("agents"))
                .sort("attempts", descending=True))
    mean_agreement = df.get_column("judge_agreement").mean()
    return [
        Section("By agent", summary_by_agent(df)),
        Section("Table 1: hard metrics by agent", t["by_agent"],
                "passed: the patch applied and was measured (status success); improvements / regressions: speedup over "
                "baseline > 1 / < 1 among those; errors: the task or machine failed. beats / similar / worse / failed: "
                "the paper's rule (±5% on the point estimate); the _ci columns: the interval rule."),
        Section("Table 2: hard metrics by repository", t["by_repo"], "The same columns, per repository and agent."),
        Section("Table 3: speedup over baseline", t["speedups"],
                "Measured attempts only. 95% intervals: percentile bootstrap (scipy, 2000 resamples) of the mean and "
                "the median; none under two distinct values. geomean: the geometric mean of the speedups."),
        Section("Quadrants (soft × hard)", t["quadrants"],
                "Counts and rates over the judged attempts, by the paper's rule (Q1..Q4) and the interval rule "
                "(Q1_ci..Q4_ci). Hard success = Q1 + Q3, true success = Q1. mean_judge_agreement: the share of votes "
                "that agree with the majority.", soft=True),
        Section("Success and correctness", t["success"],
                "Rates over all attempts. A broken patch (it changed what the model generates) is never a success; "
                "broken_but_fast counts those that measured as fast as the human anyway. Hack-adjusted: a patch "
                "flagged as gaming the benchmark keeps its numbers but is no success.", soft=True),
        Section("Failure causes by agent", t["failures"]),
        Section("What validation saved", t["validation"],
                "Patches stopped before any benchmark slot time (they do not apply, compile, import or serve), and the "
                "slot time they would have taken: for each, the median 3-way benchmark time of the measured attempts "
                "of its task (of the run where its task has none)."),
        Section("Judge agreement (Cohen's kappa)", t["kappas"],
                "Bottleneck target, per pair of raters (a judge in one order is one rater) over the attempts both "
                "judged; kappa is empty where undefined. Mean agreement with the majority over judged attempts: "
                + (f"{mean_agreement:.3f}." if mean_agreement is not None else "none judged."), soft=True),
        Section("Judges' tokens and cost", t["judge_usage"],
                "Summed from the votes; cost is empty where no vote had a known price.", soft=True),
        Section("Per task: the three arms", t["per_task"],
                "The primary metric of baseline, human and agent, and the speedups with their 95% intervals."),
        Section("Attempts", per_attempt),
        Section("Failures by cause", failures),
        Section("Samples flagged", note=(
            f"{int(df['disturbed_samples'].sum() or 0)} samples were taken while processes outside the slot used its "
            f"cores (kept in measurements.json, not counted, measured again); {int(df['throttled_samples'].sum() or 0)} "
            "were taken while a GPU was held down by power or heat (counted: see `throttled_samples` per attempt).")),
        Section("Agents that ran unsandboxed", note=(
            ("These attempts ran an agent's code as plain processes on the machine (`--sandbox none`): "
             + ", ".join(unsandboxed)) if unsandboxed else "None: every agent that ran code was contained.")),
        Section("Tasks flagged not_discriminative", note=(
            ("The human commit's speedup lies inside these tasks' own noise (baseline against itself): "
             + ", ".join(flagged)) if flagged else "None: every human speedup stands clear of its task's noise.")),
    ], t


def _markdown_section(section: Section, rule_based: bool) -> str:
    label = f" ({RULE_BASED})" if section.soft and rule_based else ""
    parts = [f"## {section.title}{label}"]
    if section.note:
        parts.append(section.note)
    if section.table is not None:
        parts.append(_markdown(section.table) if section.table.height else "None.")
    return "\n\n".join(parts)


def write_report(run_dir: str | Path) -> tuple[Path, pl.DataFrame]:
    """attempts.parquet, report.md and report.html in the run directory, from its records and judgements."""
    from isobench_ray.report.html import render_html  # matplotlib and jinja2 load only when a report is written
    from isobench_ray.report.plots import all_plots

    store = RunStore(run_dir)
    records = store.records()
    judgements = {r.attempt.id: j for r in records if (j := store.load_stage(r.attempt.id, "judgement"))}
    df = attempts_frame(records, judgements)
    store.root.mkdir(parents=True, exist_ok=True)
    tmp = store.root / ".attempts.parquet.tmp"
    df.write_parquet(tmp)
    tmp.replace(store.root / "attempts.parquet")
    runs_frame(records).write_parquet(tmp)
    tmp.replace(store.root / "runs.parquet")
    rule_based = bool(df.get_column("judge_rule_based").fill_null(False).any())
    sections, tables = _sections(df, list(judgements.values()))
    text = "\n\n".join([
        f"# isobench report: {store.root.name}",
        f"{df.height} attempts. Speedups are medians over interleaved rounds; > 1 is faster than baseline. "
        "`agent_vs_human_pct` > 0 means the agent beat the human commit; `hard_class` applies the ±5% band to the "
        "point estimate (the paper's rule); `hard_class_ci` asks the whole 95% interval to clear max(5%, 2 x the task's noise). "
        "Status `error` means the task or machine failed, not the agent.",
        *([f"**{RULE_BASED}**: the soft metrics come, at least in part, from the rule-based judge (the two diffs "
           "compared by rule, no model asked); every soft section says so."] if rule_based else []),
        *[_markdown_section(s, rule_based) for s in sections],
        "Files: `attempts.parquet` (one row per attempt), `runs.parquet` (one row per benchmark run of every arm: "
        "values, exact commands, server start times), `report.html` (these tables and plots, offline), "
        "`attempts/<id>/` (patch, logs, every stage's JSON).",
    ]) + "\n"
    write_atomic(store.root / "report.md", text)
    plots = all_plots(df, tables["quadrants"], rule_based)
    write_atomic(store.root / "report.html", render_html(store.root.name, df.height, sections, plots, rule_based))
    return store.root / "report.md", df


def print_summary(df: pl.DataFrame) -> None:
    with pl.Config(tbl_rows=200, tbl_cols=20, tbl_width_chars=200, tbl_hide_dataframe_shape=True, fmt_str_lengths=40):
        print(summary_by_agent(df))
        print(df.select("task_id", "agent", "status", "failure_cause", "human_speedup_vs_baseline", "speedup_vs_baseline",
                        "agent_vs_human_pct", "hard_class", "hard_class_ci"))
