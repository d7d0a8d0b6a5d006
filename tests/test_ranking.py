"""The report's first screen: the ranking counts what it says, best first, with intervals."""

import polars as pl

from isobench_ray.report.ranking import flagged_tasks, ranking, wilson


def _rows(agent, classes, quadrants, bench_s=360.0, **extra):
    n = len(classes)
    return [{"agent": agent, "task_id": f"t{i}", "hard_class_ci": c, "quadrant_ci": q,
             "hard_pass_ci": c in ("beats", "similar"), "hacked": extra.get("hacked", [False] * n)[i],
             "correctness": extra.get("correctness", ["preserved"] * n)[i], "slot_s": bench_s,
             "not_discriminative": i == 0 and agent == "a", "verdict_cause": extra.get("cause", [None] * n)[i]}
            for i, (c, q) in enumerate(zip(classes, quadrants))]


def test_ranking_orders_by_true_success_and_never_counts_inconclusive_broken_or_hacked():
    df = pl.DataFrame(
        _rows("a", ["beats", "similar", "inconclusive", "worse"], ["Q1", "Q3", None, "Q4"],
              cause=[None, None, "too_noisy", None])
        + _rows("b", ["beats", "beats", "similar", "failed"], ["Q1", "Q1", "Q1", "Q4"],
                hacked=[False, True, False, False], correctness=["preserved", "preserved", "broken", "preserved"]))
    table = ranking(df)
    a, b = (table.filter(pl.col("agent") == x).row(0, named=True) for x in ("a", "b"))
    # b: three Q1 but one is hacked and one broken -> one true success; a: one
    assert (b["true_success"], b["hard_success"]) == (1, 1)
    assert (a["true_success"], a["hard_success"], a["inconclusive"], a["decisive"]) == (1, 2, 1, 3)
    assert table.get_column("agent").to_list() == ["a", "b"]  # tie on true success, a has more hard success
    assert a["true_ci_low"] < 0.25 < a["true_ci_high"]
    assert a["decisive_per_slot_hour"] == 3 / (4 * 360 / 3600)
    assert flagged_tasks(df) == {"not discriminative": ["t0"], "too noisy": ["t2"], "disturbed": []}


def test_wilson_interval_is_sound_at_the_ends():
    low, high = wilson(0, 10)
    assert low == 0 and 0.2 < high < 0.35
    assert wilson(0, 0) == (None, None)
