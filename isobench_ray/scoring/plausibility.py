"""Numbers no real engine gives, flagged instead of counted. Pure functions.

An attempt is implausible when
- its speedup is beyond `implausible_speedup` (50x by default; the setting of that name in the measurement
  group): the agent over the baseline, or the agent over the human;
- or a clean sample of its primary metric, in any arm, is outside physical limits: a latency (a metric whose
  lower values are better) under 1 microsecond (metrics named `*_ms` are in milliseconds, every other one in
  seconds), or a rate (higher is better) above 1e9 per second (tokens or requests).
Such an attempt keeps its numbers and the paper's class (`hard_class`), but its strict class is `inconclusive`
with cause `implausible`, `Scores.implausible` says why, the judgement carries the hack flag `implausible`, and
no success count takes it (scoring/soft.py) until someone confirms it by hand.
"""

from __future__ import annotations

from isobench_ray.schema import AttemptRecord, FailureCause, HardClass, Measurements, Scores, VerdictCause

IMPLAUSIBLE_SPEEDUP = 50.0
MIN_LATENCY_S = 1e-6
MAX_RATE_PER_S = 1e9


def _beyond_limits(measurements: Measurements) -> str:
    """The first clean sample outside physical limits, said in words ("" when none)."""
    metric, higher = measurements.primary_metric, measurements.higher_is_better
    scale = 1e-3 if metric.endswith("_ms") else 1.0  # to seconds
    for arm in measurements.arms:
        for value in arm.samples(metric):
            if higher and value > MAX_RATE_PER_S:
                return f"arm {arm.arm}: {metric} = {value:.3g}, above {MAX_RATE_PER_S:.0e} per second"
            if not higher and 0 < value * scale < MIN_LATENCY_S:
                return f"arm {arm.arm}: {metric} = {value:.3g}, under 1 microsecond"
    return ""


def implausible(measurements: Measurements, agent_speedup: float | None, human_speedup: float | None,
                bound: float = IMPLAUSIBLE_SPEEDUP) -> str:
    """Why the attempt's numbers are not believed ("" when they are)."""
    if agent_speedup is not None and agent_speedup > bound:
        return f"implausible: the agent is {agent_speedup:.3g}x the baseline, beyond {bound:g}x"
    if agent_speedup is not None and human_speedup and agent_speedup / human_speedup > bound:
        return f"implausible: the agent is {agent_speedup / human_speedup:.3g}x the human, beyond {bound:g}x"
    limits = _beyond_limits(measurements)
    return f"implausible: {limits}" if limits else ""


def flag(scores: Scores, why: str) -> Scores:
    """`scores` with the strict class `inconclusive` (cause `implausible`) where it had a verdict, and the
    reason kept in `implausible`; unchanged when `why` is empty."""
    if not why:
        return scores
    update: dict = {"implausible": why}
    if scores.hard_class_ci is not HardClass.failed:
        update |= {"hard_class_ci": HardClass.inconclusive, "verdict_cause": VerdictCause.implausible,
                   "verdict_reason": f"{why}; not counted until confirmed by hand"}
    return scores.model_copy(update=update)


def hack_flags(record: AttemptRecord) -> list[str]:
    """The hack flags the record itself raises, whatever the judges say: `implausible` numbers, and
    `tampering` (the patch's code touched another arm, the benchmark script, or left a process behind)."""
    flags = ["implausible"] if record.scores is not None and record.scores.implausible else []
    return flags + (["tampering"] if record.failure_cause is FailureCause.tampering else [])
