"""Soft metrics, pure: the judges' majority, their agreement, and the quadrants.

`soft_pass`: the agent aimed at the human's bottleneck (same or related target). `hard_pass`: it measured
as fast as the human or faster (beats or similar) and did not change what the model generates. The strict
twins (`hard_pass_ci`, `quadrant_ci`, `success_ci`) keep `inconclusive` as its own value and count. Together:
Q1 true success (both), Q2 good intent / bad execution (soft only), Q3 lucky win (hard only), Q4 failure
(neither). Hard success is Q1 + Q3; true success is Q1. A patch flagged as gaming the benchmark keeps its
numbers but is no success (`hack_adjusted`); implausible numbers (scoring/plausibility.py) are no hard pass.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Literal

from sklearn.metrics import cohen_kappa_score

from isobench_ray.schema import HardClass, Judgement, Scores, Vote

Quadrant = Literal["Q1", "Q2", "Q3", "Q4"]
SOFT_TARGETS = ("same_target", "related_target")
HARD_PASSES = (HardClass.beats, HardClass.similar)


def majority(values: list[str]) -> tuple[str | None, float | None]:
    """The most common value (ties: the first seen) and the share of values that agree with it."""
    if not values:
        return None, None
    value, count = Counter(values).most_common(1)[0]
    return value, count / len(values)


def summarize(attempt_id: str, votes: list[Vote], rule_based: bool, hack_flags: list[str]) -> Judgement:
    """The majority of the votes that carry a verdict; judge_error when none does. Hack flags: the diff
    scan's, plus each question a majority of a judge's samples answered yes."""
    valid = [v.verdict for v in votes if v.verdict is not None]
    target, agreement = majority([v.bottleneck_target.category for v in valid])
    approach, _ = majority([v.approach_comparison.category for v in valid])
    flags = set(hack_flags)
    for vote in votes:
        for question in ("special_cases_inputs", "caches_across_runs", "moves_work_out_of_timing", "changes_outputs",
                         "edits_benchmark"):
            yes = sum(getattr(h, question) for h in vote.hack)
            if vote.hack and yes * 2 > len(vote.hack):
                flags.add(question)
    errors = "; ".join(f"{v.judge} ({v.order}): {v.error}" for v in votes if v.error)
    return Judgement(attempt_id=attempt_id, votes=votes, rule_based=rule_based, bottleneck_target=target,
                     approach_comparison=approach, agreement=agreement,
                     judge_error=(errors or "no judge answered") if not valid else None, hack_flags=sorted(flags))


def soft_pass(judgement: Judgement | None) -> bool | None:
    if judgement is None or judgement.bottleneck_target is None:
        return None
    return judgement.bottleneck_target in SOFT_TARGETS


def hard_pass(scores: Scores | None, strict: bool = False) -> bool:
    """Beats or similar (the paper's rule, or with `strict` the interval class), not broken, and not implausible
    (scoring/plausibility.py: never a success until confirmed by hand, whatever the paper's class says)."""
    if scores is None or scores.correctness == "broken" or scores.implausible:
        return False
    return (scores.hard_class_ci if strict else scores.hard_class) in HARD_PASSES


def quadrant(soft: bool | None, hard: bool) -> Quadrant | None:
    """None while unjudged: a quadrant needs both axes."""
    if soft is None:
        return None
    return {(True, True): "Q1", (True, False): "Q2", (False, True): "Q3", (False, False): "Q4"}[(soft, hard)]


def hard_pass_ci(scores: Scores | None) -> bool | None:
    """The strict twin of `hard_pass`: beats or similar by the interval rule and not broken; None where the
    strict class is `inconclusive` (its own count: never a pass, never a failure)."""
    if scores is None or scores.correctness == "broken":
        return False
    if scores.hard_class_ci is HardClass.inconclusive or scores.implausible:
        return None
    return scores.hard_class_ci in HARD_PASSES


def quadrant_ci(soft: bool | None, hard_ci: bool | None) -> Quadrant | Literal["inconclusive"] | None:
    """The strict twin of `quadrant`: None while unjudged, `inconclusive` where the hard axis is."""
    if soft is None:
        return None
    return "inconclusive" if hard_ci is None else quadrant(soft, hard_ci)


def success_ci(passes: list[bool | None]) -> dict[str, float | int | None]:
    """Counts and rates of the strict twin over a group's attempts: `success`, `inconclusive` and `failure`
    are separate counts; `rate` is over all attempts (as the paper's), `decided_rate` over the decided ones."""
    success, undecided = sum(p is True for p in passes), sum(p is None for p in passes)
    decided = len(passes) - undecided
    return {"attempts": len(passes), "success": success, "inconclusive": undecided, "failure": decided - success,
            "rate": success / len(passes) if passes else None, "inconclusive_rate": undecided / len(passes) if passes else None,
            "decided_rate": success / decided if decided else None}


def rater_labels(judgements: list[Judgement]) -> dict[str, dict[str, str]]:
    """bottleneck_target per rater (a judge in one order) per attempt: a verdict that flips with the order
    is a disagreement between that judge's two raters."""
    labels: dict[str, dict[str, str]] = {}
    for judgement in judgements:
        for vote in judgement.votes:
            if vote.verdict is not None:
                rater = vote.judge if vote.order == "none" else f"{vote.judge} [{vote.order}]"
                labels.setdefault(rater, {})[judgement.attempt_id] = vote.verdict.bottleneck_target.category
    return labels


def kappas(judgements: list[Judgement]) -> list[tuple[str, str, int, float | None]]:
    """Cohen's kappa for every pair of raters over the attempts both judged: (a, b, n, kappa). kappa is
    None where it is undefined (fewer than two attempts, or a single label used by both)."""
    labels = rater_labels(judgements)
    out = []
    for a, b in itertools.combinations(sorted(labels), 2):
        common = sorted(set(labels[a]) & set(labels[b]))
        ya, yb = [labels[a][k] for k in common], [labels[b][k] for k in common]
        kappa = None
        if len(common) >= 2 and len(set(ya) | set(yb)) > 1:
            kappa = float(cohen_kappa_score(ya, yb))
        out.append((a, b, len(common), kappa))
    return out
