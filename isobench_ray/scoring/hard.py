"""Stage 4, hard metrics: pure functions from Measurements to Scores.

Speedup is oriented so that > 1 always means faster: value/baseline for throughput-like metrics,
baseline/value for latency-like ones (the direction comes with the Measurements, from the engine's table).
agent_vs_human_pct compares the two speedups (positive: agent better). The hard class applies the ISO-Bench rule
to the point estimate: beyond +margin beats, within ±margin similar, below worse; the strict class (`hard_class_ci`)
asks the whole interval (scoring/verdicts.py).
"""

from __future__ import annotations

import math
import statistics

from isobench_ray.schema import FailureCause, HardClass, Measurements, Scores, Status, VerdictCause
from isobench_ray.scoring import correctness, plausibility, stats, verdicts


def speedup(value: float, baseline: float, higher_better: bool) -> float | None:
    if value is None or baseline is None or value <= 0 or baseline <= 0:
        return None
    return value / baseline if higher_better else baseline / value


def hard_class(agent_vs_human_pct: float | None, band_pct: float) -> HardClass:
    if agent_vs_human_pct is None:
        return HardClass.failed
    if agent_vs_human_pct > band_pct:
        return HardClass.beats
    if agent_vs_human_pct < -band_pct:
        return HardClass.worse
    return HardClass.similar


def median_of(measurements: Measurements, arm: str) -> float | None:
    samples = samples_of(measurements, arm)
    return statistics.median(samples) if samples else None


def _only_disturbed(measurements: Measurements, arm: str) -> bool:
    """The arm ran without failing and has no clean sample because every measured run was disturbed: the
    machine's doing, not the task's or the agent's (the strict class says `inconclusive`, cause disturbed)."""
    result = measurements.arm(arm)
    measured = [r for r in (result.runs if result else []) if not r.warmup]
    return bool(result and not result.failure_cause and measured and all(r.disturbed for r in measured))


def outcome(measurements: Measurements) -> tuple[Status, FailureCause | None, str]:
    """Who is at fault when an arm failed: the task (baseline/human) or the agent. Arms left without a clean
    sample by outside load are nobody's fault: measured (success), with no class but `inconclusive`."""
    for arm in ("baseline", "human"):
        result = measurements.arm(arm)
        if _only_disturbed(measurements, arm):
            continue
        if result is None or result.failure_cause or median_of(measurements, arm) is None:
            detail = f"{arm} arm: {result.failure_cause if result else 'missing'} {result.detail if result else ''}".strip()
            return Status.error, FailureCause.baseline_failed, detail
    agent = measurements.arm("agent")
    if _only_disturbed(measurements, "agent"):
        return Status.success, None, ""
    if agent is None or agent.failure_cause or median_of(measurements, "agent") is None:
        cause = (agent.failure_cause if agent else None) or FailureCause.no_metrics
        return Status.failed, cause, agent.detail if agent else ""
    return Status.success, None, ""


def samples_of(measurements: Measurements, arm: str) -> list[float]:
    result = measurements.arm(arm)
    return result.samples(measurements.primary_metric) if result else []


def _pair(iv: stats.Interval | None, scale: float = 1.0, shift: float = 0.0) -> tuple[float, float] | None:
    """An interval as stored; None when there is none (fewer than two samples make an infinite one)."""
    if iv is None or not math.isfinite(iv.low) or not math.isfinite(iv.high):
        return None
    return ((iv.low + shift) * scale, (iv.high + shift) * scale)


def intervals(measurements: Measurements, confidence: float = 0.95,
              method: stats.Method = stats.DEFAULT_METHOD) -> dict[str, stats.Interval | None]:
    """The 95% intervals of one attempt, by the method asked: `agent` and `human` over baseline, `noise`
    (baseline2 over baseline, the A/A pair) and `vs_human` (agent over human)."""
    hib = measurements.higher_is_better

    def between(arm: str, ref: str) -> stats.Interval | None:
        if method == "paired":
            return stats.paired_interval(verdicts.arm_rounds(measurements, arm), verdicts.arm_rounds(measurements, ref),
                                         hib, confidence=confidence)
        return stats.speedup_interval(samples_of(measurements, arm), samples_of(measurements, ref), hib, confidence=confidence)

    return {"agent": between("agent", "baseline"), "human": between("human", "baseline"),
            "noise": between("baseline2", "baseline"), "vs_human": between("agent", "human")}


def score(measurements: Measurements, band_pct: float = 5.0, confidence: float = 0.95, min_samples: int = 2,
          accuracy_drop_max: float = 0.05, method: stats.Method = stats.DEFAULT_METHOD,
          implausible_speedup: float = plausibility.IMPLAUSIBLE_SPEEDUP) -> Scores:
    """Speedups, classes and intervals. `band_pct` is the margin (`hard_band_pct`): the paper's class applies it
    to the point estimate, the strict class to the whole interval (scoring/verdicts.py), below `min_samples`
    clean samples in any arm the strict class is `inconclusive` (docs/measurement.md). Numbers beyond
    `implausible_speedup` or physical limits make it `inconclusive` too (scoring/plausibility.py)."""
    hib = measurements.higher_is_better
    b, h, a = (median_of(measurements, arm) for arm in ("baseline", "human", "agent"))
    ivs = intervals(measurements, confidence, method)
    noise = stats.noise_pct(ivs["noise"])
    agent_speedup = speedup(a, b, hib) if a is not None and b is not None else None
    human_speedup = speedup(h, b, hib) if h is not None and b is not None else None
    status, _, _ = outcome(measurements)
    vs_human, vs_human_iv = None, None
    if status is Status.success and agent_speedup and human_speedup:
        vs_human, vs_human_iv = (agent_speedup / human_speedup - 1.0) * 100.0, ivs["vs_human"]
    verdict = verdicts.strict(measurements, vs_human_iv, noise, band_pct, min_samples)
    scores = Scores(
        attempt_id=measurements.attempt_id, primary_metric=measurements.primary_metric, higher_is_better=hib,
        baseline_value=b, human_value=h, agent_value=a, speedup_vs_baseline=agent_speedup,
        human_speedup_vs_baseline=human_speedup, agent_vs_human_pct=vs_human,
        # the paper's class too says nothing where disturbed runs left no clean samples to compare
        hard_class=HardClass.inconclusive if vs_human is None and verdict.cause is VerdictCause.disturbed
        else hard_class(vs_human, band_pct),
        speedup_ci=_pair(ivs["agent"]), human_speedup_ci=_pair(ivs["human"]),
        agent_vs_human_ci_pct=_pair(vs_human_iv, 100.0, -1.0), noise_pct=noise, band_pct=stats.band_pct(noise, band_pct),
        hard_class_ci=verdict.hard_class, margin_pct=band_pct, verdict_cause=verdict.cause,
        verdict_reason=verdict.reason, interval_method=method,
        not_discriminative=stats.not_discriminative(ivs["human"], noise),
        rounds=len(measurements.order),
        **dict(zip(("correctness", "correctness_detail"), correctness.check(measurements, accuracy_drop_max))),
    )
    if status is not Status.success:
        return scores
    return plausibility.flag(scores, plausibility.implausible(measurements, agent_speedup, human_speedup,
                                                              implausible_speedup))
