"""The report's first screen: which agent did best, by the interval rule, with intervals on every rate.

One row per agent, best first: true success (Q1 by the interval rule: faster or as fast as the human
commit with an interval that says so, same bottleneck by the judges, outputs not broken, no hack flag) and
hard success (the same without the judges), each with a 95% Wilson interval over all the agent's attempts;
how many verdicts were decisive, inconclusive or failed; and the slot time spent per decisive verdict.
Pure Polars and scipy.
"""

from __future__ import annotations

import polars as pl
from scipy import stats

DECISIVE = ("beats", "similar", "worse")


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float | None, float | None]:
    """The Wilson score interval of a rate (sound at 0 and n, unlike the normal one); None without attempts."""
    if n <= 0:
        return None, None
    ci = stats.binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return round(float(ci.low), 3), round(float(ci.high), 3)


def _agent_row(agent: str, rows: pl.DataFrame) -> dict:
    n = rows.height
    hacked = rows.get_column("hacked").fill_null(False)
    clean = ~hacked & (rows.get_column("correctness") != "broken")
    true = int(((rows.get_column("quadrant_ci") == "Q1").fill_null(False) & clean).sum())
    hard = int((rows.get_column("hard_pass_ci").fill_null(False) & clean).sum())
    classes = rows.get_column("hard_class_ci")
    decisive = int(classes.is_in(DECISIVE).sum())
    slot_h = float(rows.get_column("slot_s").fill_null(0).sum()) / 3600
    t_low, t_high = wilson(true, n)
    h_low, h_high = wilson(hard, n)
    return {
        "agent": agent, "attempts": n,
        "true_success": true, "true_success_rate": round(true / n, 3) if n else None,
        "true_ci_low": t_low, "true_ci_high": t_high,
        "hard_success": hard, "hard_success_rate": round(hard / n, 3) if n else None,
        "hard_ci_low": h_low, "hard_ci_high": h_high,
        "decisive": decisive, "inconclusive": int((classes == "inconclusive").sum()),
        "failed": int((classes == "failed").sum()),
        "broken": int((rows.get_column("correctness") == "broken").sum()),
        "slot_hours": round(slot_h, 3),
        "decisive_per_slot_hour": round(decisive / slot_h, 2) if slot_h > 0 else None,
    }


_SCHEMA = {"rank": pl.Int64, "agent": pl.Utf8, "attempts": pl.Int64, "true_success": pl.Int64,
           "true_success_rate": pl.Float64, "true_ci_low": pl.Float64, "true_ci_high": pl.Float64,
           "hard_success": pl.Int64, "hard_success_rate": pl.Float64, "hard_ci_low": pl.Float64,
           "hard_ci_high": pl.Float64, "decisive": pl.Int64, "inconclusive": pl.Int64, "failed": pl.Int64,
           "broken": pl.Int64, "slot_hours": pl.Float64, "decisive_per_slot_hour": pl.Float64}


def ranking(df: pl.DataFrame) -> pl.DataFrame:
    """Agents best first: by true success, then hard success, then fewer inconclusive verdicts."""
    rows = [_agent_row(agent, df.filter(pl.col("agent") == agent))
            for agent in df.get_column("agent").unique(maintain_order=True).to_list()]
    out = pl.DataFrame(rows, schema={k: v for k, v in _SCHEMA.items() if k != "rank"})
    out = out.sort(["true_success_rate", "hard_success_rate", "inconclusive"], descending=[True, True, False],
                   nulls_last=True)
    return out.with_row_index("rank", offset=1).with_columns(pl.col("rank").cast(pl.Int64)).select(list(_SCHEMA))


def flagged_tasks(df: pl.DataFrame) -> dict[str, list[str]]:
    """Tasks this machine could not use to tell agents apart: the human speedup inside the task's own noise
    (not discriminative), or verdicts the noise left undecided (too noisy) or disturbed by outside load."""
    def tasks_where(expr: pl.Expr) -> list[str]:
        return df.filter(expr).get_column("task_id").unique().sort().to_list()

    cause = pl.col("verdict_cause").fill_null("")
    return {
        "not discriminative": tasks_where(pl.col("not_discriminative").fill_null(False)),
        "too noisy": tasks_where(cause == "too_noisy"),
        "disturbed": tasks_where(cause == "disturbed"),
    }


def ranking_note(df: pl.DataFrame) -> str:
    """The words under the ranking: what the rates mean, and the tasks flagged on this machine."""
    flagged = flagged_tasks(df)
    lines = [f"{kind}: {', '.join(tasks)}" for kind, tasks in flagged.items() if tasks]
    return ("Best first, by the interval rule over all of each agent's attempts (95% Wilson intervals). True "
            "success: Q1 (measured faster than or equal to the human commit with an interval that decides it, "
            "same bottleneck by the judges); hard success: the measurement alone; neither counts a broken or "
            "hack-flagged patch. Decisive: the interval decided beats, similar or worse; inconclusive: it could "
            "not on this machine (never counted as similar or worse). Tasks flagged on this machine: "
            + ("; ".join(lines) if lines else "none") + ".")


def health(df: pl.DataFrame) -> str:
    """The run's health in one line: the machine's noise, disturbed samples, flagged tasks, the judges."""
    noise = df.get_column("noise_pct").drop_nulls()
    flagged = flagged_tasks(df)
    judges = sorted({j for cell in df.get_column("judges").drop_nulls().to_list() for j in cell.split(", ") if j})
    parts = [
        f"A/A noise median {noise.median():.1f}% (max {noise.max():.1f}%) over {noise.len()} attempts" if noise.len()
        else "no A/A noise measured",
        f"{int(df.get_column('disturbed_samples').sum() or 0)} disturbed samples (never counted)",
        f"{len(flagged['not discriminative'])} task(s) not discriminative, {len(flagged['too noisy'])} too noisy",
        "judges: " + (", ".join(judges) if judges else "none yet"),
    ]
    return "Run health: " + "; ".join(parts) + "."
