"""The contamination split: each agent's rates on tasks whose commit came before its model's knowledge cutoff
and after it. A model may have seen a commit made before its cutoff (the fix itself, or its discussion); one
made after it, it cannot have. Agents declare `knowledge_cutoff: YYYY-MM` in the agents file; tasks carry their
commit's date (`commit_date`). Pure Polars."""

from __future__ import annotations

import polars as pl

from isobench_ray.report.ranking import wilson

_SCHEMA = {"agent": pl.Utf8, "knowledge_cutoff": pl.Utf8, "tasks": pl.Utf8, "attempts": pl.Int64,
           "hard_success": pl.Int64, "hard_success_rate": pl.Float64, "hard_ci_low": pl.Float64,
           "hard_ci_high": pl.Float64, "broken": pl.Int64}


def agent_cutoffs(run_json: dict | None) -> dict[str, str]:
    """Each agent's declared knowledge cutoff (run.json's agents)."""
    return {a["name"]: a["knowledge_cutoff"] for a in (run_json or {}).get("agents", [])
            if a.get("name") and a.get("knowledge_cutoff")}


def side(commit_date: str | None, cutoff: str) -> str:
    """`before` when the commit's month is the cutoff's or earlier (it may be in the training data), `after`
    when later, `undated` without a date."""
    if not commit_date:
        return "undated"
    return "before" if commit_date[:7] <= cutoff else "after"


def cutoff_split(df: pl.DataFrame, cutoffs: dict[str, str]) -> pl.DataFrame:
    """One row per (agent with a cutoff, side): its attempts and hard successes (the interval rule, not broken,
    no hack flag) with a 95% Wilson interval."""
    rows = []
    for agent, cutoff in sorted(cutoffs.items()):
        mine = df.filter(pl.col("agent") == agent)
        sides = [side(d, cutoff) for d in mine.get_column("commit_date").to_list()]
        mine = mine.with_columns(pl.Series("side", sides, dtype=pl.Utf8))
        for name in ("before", "after", "undated"):
            part = mine.filter(pl.col("side") == name)
            if part.height == 0 and name == "undated":
                continue
            clean = ~part.get_column("hacked").fill_null(False) & (part.get_column("correctness") != "broken")
            hard = int((part.get_column("hard_pass_ci").fill_null(False) & clean).sum())
            low, high = wilson(hard, part.height)
            rows.append({"agent": agent, "knowledge_cutoff": cutoff, "tasks": f"{name} the cutoff" if name != "undated"
                         else "no commit date", "attempts": part.height, "hard_success": hard,
                         "hard_success_rate": round(hard / part.height, 3) if part.height else None,
                         "hard_ci_low": low, "hard_ci_high": high,
                         "broken": int((part.get_column("correctness") == "broken").sum())})
    return pl.DataFrame(rows, schema=_SCHEMA)
