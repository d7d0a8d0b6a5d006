"""Agents compared with each other, with intervals: pure functions over per-attempt rows.

Rows are attempts.parquet's (a Polars frame or a list of dicts with task_id, agent, rollout, status,
speedup_vs_baseline, human_speedup_vs_baseline, correctness and the pass column asked for). Intervals are
percentile bootstraps over tasks (the unit that was sampled), 2,000 resamples, seeded.

- `pairwise`: on the tasks two agents share, the paired difference of log speedup (an agent's rollouts on a
  task averaged first), as a ratio of geometric means with its interval, and how often a bootstrap flips
  the pair's order.
- `pass_at_k`: the unbiased pass@k (Chen et al. 2021) over rollouts of any pass column (hard_pass,
  hard_pass_ci: an inconclusive rollout is no pass there, and counted apart).
- `opt_at_k`: GSO's opt@k: the best of k rollouts reaches the target (>= 1.1x over baseline and >= 0.95x
  the human's speedup, not broken), estimated the same way.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import polars as pl

from isobench_ray.scoring.policies import GSO_BASE_TARGET, GSO_HUMAN_TARGET

PAIR_SCHEMA = {"agent_a": pl.Utf8, "agent_b": pl.Utf8, "tasks": pl.Int64, "a_faster_tasks": pl.Int64,
               "ratio": pl.Float64, "ratio_ci_low": pl.Float64, "ratio_ci_high": pl.Float64,
               "p_order_flips": pl.Float64}
AT_K_SCHEMA = {"agent": pl.Utf8, "k": pl.Int64, "tasks": pl.Int64, "rollouts": pl.Int64, "successes": pl.Int64,
               "inconclusive": pl.Int64, "value": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64}


def _frame(rows) -> pl.DataFrame:
    return rows if isinstance(rows, pl.DataFrame) else pl.DataFrame(rows, infer_schema_length=None)


def _bootstrap_means(values: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Means of `values` resampled with replacement (one row of indices per resample)."""
    rng = np.random.default_rng(seed)
    return values[rng.integers(0, len(values), size=(n_resamples, len(values)))].mean(axis=1)


def _interval(means: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def task_log_speedups(rows, failed_as: float | None = None) -> pl.DataFrame:
    """Per agent and task: the mean log speedup over its rollouts (measured ones; with `failed_as`, an attempt
    without a speedup counts as that speedup, e.g. 1.0 for "no change")."""
    df = _frame(rows)
    speed = pl.col("speedup_vs_baseline").cast(pl.Float64)
    if failed_as is not None:
        speed = speed.fill_null(failed_as)
    return (df.with_columns(speed.alias("s")).filter(pl.col("s").is_not_null() & (pl.col("s") > 0))
            .group_by("agent", "task_id").agg(pl.col("s").log().mean().alias("log_speedup")))


def pairwise(rows, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0,
             failed_as: float | None = None) -> pl.DataFrame:
    """Every pair of agents on their shared tasks: ratio = exp(mean(log s_a - log s_b)) > 1 when a is faster,
    its bootstrap interval over tasks, and p_order_flips, the share of resamples whose order is the other way."""
    logs = task_log_speedups(rows, failed_as)
    out = []
    for a, b in itertools.combinations(sorted(logs.get_column("agent").unique().to_list()), 2):
        joined = (logs.filter(pl.col("agent") == a).join(logs.filter(pl.col("agent") == b), on="task_id", suffix="_b"))
        d = (joined.get_column("log_speedup") - joined.get_column("log_speedup_b")).to_numpy()
        row = {"agent_a": a, "agent_b": b, "tasks": len(d), "a_faster_tasks": int((d > 0).sum()),
               "ratio": math.exp(d.mean()) if len(d) else None, "ratio_ci_low": None, "ratio_ci_high": None,
               "p_order_flips": None}
        if len(d) >= 2:
            means = _bootstrap_means(d, n_resamples, seed)
            low, high = _interval(means, confidence)
            sign = np.sign(d.mean())
            flips = float((np.sign(means) != sign).mean()) if sign else 0.5
            row |= {"ratio_ci_low": math.exp(low), "ratio_ci_high": math.exp(high), "p_order_flips": flips}
        out.append(row)
    return pl.DataFrame(out, schema=PAIR_SCHEMA)


def pass_at_k_estimate(n: int, c: int, k: int) -> float:
    """The unbiased pass@k of one task with n rollouts, c of them passing: 1 - C(n-c, k) / C(n, k)."""
    if n < k:
        raise ValueError(f"pass@{k} needs at least {k} rollouts, the task has {n}")
    return 1.0 if n - c < k else 1.0 - math.comb(n - c, k) / math.comb(n, k)


def _at_k(df: pl.DataFrame, passed: pl.Expr, k: int, confidence: float, n_resamples: int, seed: int) -> pl.DataFrame:
    per_task = (df.with_columns(passed.alias("_pass"))
                .group_by("agent", "task_id")
                .agg(pl.len().alias("n"), pl.col("_pass").fill_null(False).sum().alias("c"),
                     pl.col("_pass").is_null().sum().alias("undecided")))
    out = []
    for agent in sorted(per_task.get_column("agent").unique().to_list()):
        tasks = per_task.filter((pl.col("agent") == agent) & (pl.col("n") >= k))
        values = np.array([pass_at_k_estimate(n, c, k) for n, c in zip(tasks["n"], tasks["c"])])
        low = high = None
        if len(values) >= 2 and np.ptp(values) > 0:
            low, high = _interval(_bootstrap_means(values, n_resamples, seed), confidence)
        out.append({"agent": agent, "k": k, "tasks": len(values), "rollouts": int(tasks["n"].sum()),
                    "successes": int(tasks["c"].sum()), "inconclusive": int(tasks["undecided"].sum()),
                    "value": float(values.mean()) if len(values) else None, "ci_low": low, "ci_high": high})
    return pl.DataFrame(out, schema=AT_K_SCHEMA)


def pass_at_k(rows, k: int, column: str = "hard_pass", confidence: float = 0.95, n_resamples: int = 2000,
              seed: int = 0) -> pl.DataFrame:
    """pass@k per agent over its tasks with at least k rollouts; `value` is pass@k. A null in `column`
    (hard_pass_ci: inconclusive) is no pass, and is counted in `inconclusive`."""
    return _at_k(_frame(rows), pl.col(column), k, confidence, n_resamples, seed)


def opt_at_k(rows, k: int, base_target: float = GSO_BASE_TARGET, human_target: float = GSO_HUMAN_TARGET,
             confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> pl.DataFrame:
    """GSO's opt@k per agent: a rollout reaches the target when measured, not broken, >= base_target over
    baseline and >= human_target of the human's speedup; `value` is the chance the best of k does."""
    speed, human = pl.col("speedup_vs_baseline"), pl.col("human_speedup_vs_baseline")
    reached = ((pl.col("status") == "success") & (pl.col("correctness") != "broken") & (speed >= base_target)
               & (speed >= human_target * human)).fill_null(False)
    return _at_k(_frame(rows), reached, k, confidence, n_resamples, seed)
