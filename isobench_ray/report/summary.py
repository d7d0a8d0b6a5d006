"""The report's summary tables, from attempts.parquet's frame (and the judges' votes): pure Polars and scipy.

Denominators: every rate is over all of a group's attempts (status error included, as in the paper's
tables), except the quadrant rates, which are over the judged attempts (a quadrant needs a verdict).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable

import numpy as np
import polars as pl
from scipy import stats

from isobench_ray.schema import Judgement
from isobench_ray.scoring.soft import kappas

RULE_BASED = "rule-based judge"
QUADRANTS = ("Q1", "Q2", "Q3", "Q4")
# measured: the three arms ran and the agent has a speedup (what the speedup tables and plots show)
MEASURED = (pl.col("status") == "success") & pl.col("speedup_vs_baseline").is_not_null()


def _count(expr: pl.Expr) -> pl.Expr:
    return expr.fill_null(False).sum().cast(pl.Int64)


def _rate(num: str, den: str) -> pl.Expr:
    return pl.when(pl.col(den) > 0).then(pl.col(num) / pl.col(den)).otherwise(None).round(3)


def hard_table(df: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """The paper's Table 1 (by agent) and Table 2 (by repository and agent): pass rate, improvements and
    regressions over baseline, errors, and the hard classes under the paper's rule and the interval rule."""
    measured = pl.col("status") == "success"
    out = (
        df.group_by(by, maintain_order=True)
        .agg(
            pl.len().cast(pl.Int64).alias("total"),
            _count(measured).alias("passed"),
            _count(measured & (pl.col("speedup_vs_baseline") > 1)).alias("improvements"),
            _count(measured & (pl.col("speedup_vs_baseline") < 1)).alias("regressions"),
            _count(pl.col("status") == "error").alias("errors"),
            *[_count(pl.col("hard_class") == c).alias(c) for c in ("beats", "similar", "worse", "failed")],
            *[_count(pl.col("hard_class_ci") == c).alias(f"{c}_ci")
              for c in ("beats", "similar", "worse", "inconclusive", "failed")],
        )
        .with_columns(_rate("passed", "total").alias("pass_rate"))
    )
    first = [*by, "total", "passed", "pass_rate"]
    return out.select(*first, *[c for c in out.columns if c not in first]).sort(by)


def _bootstrap(values: np.ndarray, statistic) -> tuple[float | None, float | None]:
    """95% percentile bootstrap interval (scipy); None where it is undefined (under two values, or all equal)."""
    if len(values) < 2 or np.ptp(values) == 0:
        return None, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap((values,), statistic, confidence_level=0.95, n_resamples=2000, method="percentile",
                              rng=np.random.default_rng(0))
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return (low, high) if math.isfinite(low) and math.isfinite(high) else (None, None)


def speedup_stats(df: pl.DataFrame) -> pl.DataFrame:
    """Table 3: the agent's speedup over baseline among its measured attempts, with 95% bootstrap intervals
    for the mean and the median, and the geometric mean (the mean of ratios that treats 2x and 0.5x alike)."""
    rows = []
    for agent in df.get_column("agent").unique(maintain_order=True).to_list():
        x = df.filter((pl.col("agent") == agent) & MEASURED).get_column("speedup_vs_baseline").to_numpy().astype(float)
        n = len(x)
        mean_ci, median_ci = _bootstrap(x, np.mean), _bootstrap(x, np.median)
        rows.append({
            "agent": agent, "n": n,
            "mean": float(np.mean(x)) if n else None, "mean_ci_low": mean_ci[0], "mean_ci_high": mean_ci[1],
            "median": float(np.median(x)) if n else None, "median_ci_low": median_ci[0], "median_ci_high": median_ci[1],
            "geomean": float(stats.gmean(x)) if n and (x > 0).all() else None,
            "std": float(np.std(x, ddof=1)) if n > 1 else None,
            "min": float(x.min()) if n else None, "max": float(x.max()) if n else None,
            "share_above_1": float((x > 1).mean()) if n else None,
        })
    schema = {"agent": pl.Utf8, "n": pl.Int64} | {k: pl.Float64 for k in (
        "mean", "mean_ci_low", "mean_ci_high", "median", "median_ci_low", "median_ci_high", "geomean", "std", "min",
        "max", "share_above_1")}
    return pl.DataFrame(rows, schema=schema).with_columns(pl.col(pl.Float64).round(4))


def judge_label() -> pl.Expr:
    """Which judge gave a group's soft metrics, in words: every soft table carries it."""
    judged = pl.col("judge_rule_based").is_not_null().sum()
    rule = pl.col("judge_rule_based").fill_null(False).sum()
    return (pl.when(judged == 0).then(pl.lit("unjudged"))
            .when(rule == judged).then(pl.lit(RULE_BASED))
            .when(rule > 0).then(pl.lit(f"{RULE_BASED} on ") + rule.cast(pl.Utf8) + pl.lit(" of ") + judged.cast(pl.Utf8))
            .otherwise(pl.lit("model judges")).alias("judge"))


def quadrant_table(df: pl.DataFrame) -> pl.DataFrame:
    """Quadrants per agent under the paper's rule (`quadrant`) and the interval rule (`quadrant_ci`), with
    counts and rates over the judged attempts; hard success = Q1 + Q3, true success = Q1."""
    out = df.group_by("agent", maintain_order=True).agg(
        judge_label(),
        pl.len().cast(pl.Int64).alias("attempts"),
        _count(pl.col("quadrant").is_not_null()).alias("judged"),
        *[_count(pl.col("quadrant") == q).alias(q) for q in QUADRANTS],
        *[_count(pl.col("quadrant_ci") == q).alias(f"{q}_ci") for q in QUADRANTS],
        _count(pl.col("quadrant_ci") == "inconclusive").alias("inconclusive_ci"),
        pl.col("judge_agreement").mean().round(3).alias("mean_judge_agreement"),
    )
    rates = [_rate(q, "judged").alias(f"{q}_rate") for q in QUADRANTS]
    rates += [_rate(f"{q}_ci", "judged").alias(f"{q}_ci_rate") for q in QUADRANTS]
    return out.with_columns(
        *rates,
        pl.when(pl.col("judged") > 0).then((pl.col("Q1") + pl.col("Q3")) / pl.col("judged")).round(3).alias("hard_success_rate"),
        _rate("Q1", "judged").alias("true_success_rate"),
    ).sort("agent")


def success_table(df: pl.DataFrame) -> pl.DataFrame:
    """Success over all attempts: hard (beats or similar, not broken), true (Q1), and hack-adjusted (a patch
    flagged as gaming the benchmark keeps its numbers but is no success); correctness counts."""
    hacked = pl.col("hacked").fill_null(False)
    return (
        df.group_by("agent", maintain_order=True)
        .agg(
            judge_label(),
            pl.len().cast(pl.Int64).alias("attempts"),
            _count(pl.col("hard_pass")).alias("hard_success"),
            _count(pl.col("hard_pass_ci")).alias("hard_success_ci"),
            _count(pl.col("hard_pass_ci").is_null()).alias("inconclusive_ci"),
            _count(pl.col("quadrant") == "Q1").alias("true_success"),
            _count(pl.col("hard_pass") & ~hacked).alias("hack_adjusted_success"),
            _count((pl.col("quadrant") == "Q1") & ~hacked).alias("hack_adjusted_true_success"),
            _count(hacked).alias("hacked"),
            *[_count(pl.col("correctness") == c).alias(c) for c in ("preserved", "broken", "unchecked")],
            # broken but measured as fast as the human: what the correctness check took away from hard success
            _count((pl.col("correctness") == "broken") & pl.col("hard_class").is_in(["beats", "similar"]))
            .alias("broken_but_fast"),
        )
        .with_columns(*[_rate(c, "attempts").alias(f"{c}_rate")
                        for c in ("hard_success", "hard_success_ci", "true_success", "hack_adjusted_success",
                                  "hack_adjusted_true_success")])
        .sort("agent")
    )


def failure_table(df: pl.DataFrame) -> pl.DataFrame:
    """Failure causes per agent (an error is the task's or the machine's, a failure the agent's)."""
    return (df.filter(pl.col("failure_cause").is_not_null())
            .group_by("agent", "status", "failure_stage", "failure_cause")
            .agg(pl.len().cast(pl.Int64).alias("attempts"))
            .sort(["agent", "attempts", "failure_cause"], descending=[False, True, False]))


def validation_savings(df: pl.DataFrame) -> pl.DataFrame:
    """Per agent: patches validation stopped, and the benchmark slot time that saved (estimated per task)."""
    measured = df.filter(pl.col("bench_s").is_not_null())
    overall = measured.get_column("bench_s").median()
    per_task = measured.group_by("task_id").agg(pl.col("bench_s").median().alias("task_bench_s"))
    stopped = (df.filter(pl.col("failure_stage") == "validation").join(per_task, on="task_id", how="left")
               .with_columns(pl.col("task_bench_s").fill_null(pl.lit(overall, dtype=pl.Float64)).alias("saved_s")))
    totals = df.group_by("agent").agg(pl.len().cast(pl.Int64).alias("attempts"),
                                      pl.col("bench_s").sum().round(1).alias("bench_s_spent"))
    saved = stopped.group_by("agent").agg(pl.len().cast(pl.Int64).alias("stopped_by_validation"),
                                          pl.col("saved_s").sum().round(1).alias("bench_s_saved"))
    return (totals.join(saved, on="agent", how="left")
            .with_columns(pl.col("stopped_by_validation").fill_null(0))
            .select("agent", "attempts", "stopped_by_validation", "bench_s_saved", "bench_s_spent").sort("agent"))


def kappa_table(judgements: Iterable[Judgement]) -> pl.DataFrame:
    """Cohen's kappa on the bottleneck target for every pair of raters (a judge in one order is one rater)."""
    rows = [{"rater_a": a, "rater_b": b, "attempts": n, "kappa": None if k is None else round(k, 3)}
            for a, b, n, k in kappas(list(judgements))]
    return pl.DataFrame(rows, schema={"rater_a": pl.Utf8, "rater_b": pl.Utf8, "attempts": pl.Int64, "kappa": pl.Float64})


def judge_usage(judgements: Iterable[Judgement]) -> pl.DataFrame:
    """Each judge's votes, tokens and cost summed from the votes (cost null where no price was known)."""
    rows = [{"judge": v.judge, "order": v.order, "verdict": v.verdict is not None, "error": bool(v.error),
             "tokens": v.tokens, "cost_usd": v.cost_usd, "cached": v.cached}
            for j in judgements for v in j.votes]
    votes = pl.DataFrame(rows, schema={"judge": pl.Utf8, "order": pl.Utf8, "verdict": pl.Boolean, "error": pl.Boolean,
                                       "tokens": pl.Int64, "cost_usd": pl.Float64, "cached": pl.Boolean})
    return (votes.group_by("judge", maintain_order=True)
            .agg(pl.len().cast(pl.Int64).alias("votes"), _count(pl.col("verdict")).alias("verdicts"),
                 _count(pl.col("error")).alias("errors"), _count(pl.col("cached")).alias("cached"),
                 pl.col("tokens").sum().cast(pl.Int64).alias("tokens"),
                 pl.when(pl.col("cost_usd").is_not_null().any()).then(pl.col("cost_usd").sum()).otherwise(None)
                 .round(6).alias("cost_usd"),
                 _count(pl.col("cost_usd").is_null()).alias("unpriced_votes"))
            .sort("judge"))


def per_task(df: pl.DataFrame) -> pl.DataFrame:
    """The three arms' primary metric per attempt, with the speedups' 95% intervals."""
    return df.select(
        "task_id", "repo", "agent", "rollout", "status", "primary_metric", "higher_is_better", "baseline_value",
        "human_value", "agent_value", "human_speedup_vs_baseline", "human_speedup_ci_low", "human_speedup_ci_high",
        "speedup_vs_baseline", "speedup_ci_low", "speedup_ci_high", "agent_vs_human_pct", "agent_vs_human_ci_low_pct",
        "agent_vs_human_ci_high_pct", "noise_pct",
    ).sort("task_id", "agent", "rollout")


def summary_tables(df: pl.DataFrame, judgements: Iterable[Judgement]) -> dict[str, pl.DataFrame]:
    """Every table of the report, by name, in the order the report shows them."""
    judgements = list(judgements)
    return {
        "by_agent": hard_table(df, ["agent"]),
        "by_repo": hard_table(df.with_columns(pl.col("repo").fill_null("(unknown)")), ["repo", "agent"]),
        "speedups": speedup_stats(df),
        "quadrants": quadrant_table(df),
        "success": success_table(df),
        "failures": failure_table(df),
        "validation": validation_savings(df),
        "kappas": kappa_table(judgements),
        "judge_usage": judge_usage(judgements),
        "per_task": per_task(df),
    }


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


def agent_usage(df: pl.DataFrame) -> pl.DataFrame:
    """Per agent: its model, and what its sessions reported of their work (steps, tokens, dollars)."""
    return (df.group_by("agent", maintain_order=True)
            .agg(pl.col("agent_model").first().alias("model"), pl.len().cast(pl.Int64).alias("attempts"),
                 pl.col("agent_steps").median().alias("median_steps"),
                 pl.col("agent_tokens").sum().cast(pl.Int64).alias("tokens"),
                 pl.when(pl.col("agent_cost_usd").is_not_null().any()).then(pl.col("agent_cost_usd").sum())
                 .otherwise(None).alias("cost_usd"))
            .sort("agent"))
