"""The strict verdict of agent vs human, and why it is not decided when it is not. Pure functions.

The rule (docs/measurement.md, "The strict class"):
- `similar`: the whole interval of agent/human lies inside ±margin (5%, `hard_band_pct`). Noise never widens
  it: a noisier machine makes `similar` harder to reach, never easier.
- `beats` / `worse`: the whole interval lies beyond ±max(margin, the task's own noise), the A/A arm's.
- anything else is `inconclusive`, with a cause and a sentence: `too_noisy` (the interval is wider than the
  margin, or clears the margin but not the noise), `straddles` (it crosses an edge), `disturbed` or
  `few_samples` (an arm has fewer than `min_samples` clean samples; disturbed: because runs were disturbed).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass

from isobench_ray.schema import ALL_ARMS, HardClass, Measurements, VerdictCause
from isobench_ray.scoring.stats import Interval, band_pct, hard_class_ci


@dataclass(frozen=True)
class Verdict:
    hard_class: HardClass
    cause: VerdictCause | None = None
    reason: str = ""


def _pct(iv: Interval) -> tuple[float, float]:
    return (iv.low - 1) * 100, (iv.high - 1) * 100


def _span(iv: Interval) -> str:
    low, high = _pct(iv)
    return f"[{low:+.1f}%, {high:+.1f}%]"


def arm_rounds(measurements: Measurements, arm: str) -> dict[int, float]:
    """An arm's clean samples by round: the median of each round's (one value with runs_per_round 1)."""
    result = measurements.arm(arm)
    by_round: dict[int, list[float]] = defaultdict(list)
    for run in (result.runs if result else []):
        if run.is_sample and measurements.primary_metric in run.metrics:
            by_round[run.round].append(float(run.metrics[measurements.primary_metric]))
    return {r: statistics.median(v) for r, v in sorted(by_round.items())}


def shortfall(measurements: Measurements, min_samples: int) -> Verdict | None:
    """Inconclusive when any measured arm has fewer than `min_samples` clean samples (Run.is_sample): cause
    `disturbed` where disturbed runs (Run.disturbed) took the missing places, `few_samples` otherwise."""
    for name in ALL_ARMS:
        arm = measurements.arm(name)
        if arm is None or arm.failure_cause:
            continue
        clean = len(arm.samples(measurements.primary_metric))
        if clean >= min_samples:
            continue
        disturbed = sum(r.disturbed and not r.warmup for r in arm.runs)
        if disturbed:
            return Verdict(HardClass.inconclusive, VerdictCause.disturbed,
                           f"disturbed: arm {name} has {clean} clean samples of {min_samples} "
                           f"({disturbed} disturbed runs not counted)")
        return Verdict(HardClass.inconclusive, VerdictCause.few_samples,
                       f"few_samples: arm {name} has {clean} clean samples of {min_samples}")
    return None


def samples_needed(half_width_pct: float, n: int, margin: float) -> int | None:
    """Samples per arm for an interval of ±margin, if the half-width shrinks as 1/sqrt(n) (a lower bound)."""
    if not math.isfinite(half_width_pct) or margin <= 0 or n < 1:
        return None
    return max(n + 1, math.ceil(n * (half_width_pct / margin) ** 2))


def _inconclusive(iv: Interval, margin: float, noise: float | None, n: int) -> Verdict:
    low, high = _pct(iv)
    half = (high - low) / 2
    aa = f"the A/A interval is ±{noise:.1f}%" if noise is not None else "there is no A/A arm"
    if low > margin or high < -margin:
        return Verdict(HardClass.inconclusive, VerdictCause.too_noisy,
                       f"too_noisy: agent/human {_span(iv)} clears the ±{margin:g}% margin but not the task's "
                       f"noise ({aa})")
    if half > margin:
        need = samples_needed(half, n, margin)
        return Verdict(HardClass.inconclusive, VerdictCause.too_noisy,
                       f"too_noisy: {aa} and agent/human {_span(iv)} is ±{half:.1f}% wide; about "
                       f"{need} samples per arm would be needed for ±{margin:g}% (have {n})")
    edge = f"±{band_pct(noise, margin):.1f}%" if noise is not None and noise > margin else f"±{margin:g}%"
    return Verdict(HardClass.inconclusive, VerdictCause.straddles,
                   f"straddles: agent/human {_span(iv)} crosses {edge}")


def interval_verdict(iv: Interval | None, margin: float, noise: float | None, n: int) -> Verdict:
    """The rule on an agent/human interval (ratio, > 1: agent faster); n: samples per arm behind it."""
    if iv is None:
        return Verdict(HardClass.failed, None, "failed: no agent/human interval (an arm failed or has no samples)")
    if not (math.isfinite(iv.low) and math.isfinite(iv.high)):
        return Verdict(HardClass.inconclusive, VerdictCause.few_samples,
                       "few_samples: under two samples per arm, no interval")
    cls = hard_class_ci(iv, margin, noise)
    if cls is HardClass.similar:
        return Verdict(cls, None, f"similar: agent/human {_span(iv)} lies inside ±{margin:g}%")
    if cls in (HardClass.beats, HardClass.worse):
        side = "above +" if cls is HardClass.beats else "below -"
        return Verdict(cls, None, f"{cls.value}: agent/human {_span(iv)} lies {side}{band_pct(noise, margin):.1f}% "
                                  f"(max of the ±{margin:g}% margin and the task's noise)")
    return _inconclusive(iv, margin, noise, n)


def strict(measurements: Measurements, vs_human: Interval | None, noise: float | None, margin: float,
           min_samples: int) -> Verdict:
    """The strict class of one attempt: too few clean samples because runs were disturbed (inconclusive, even
    when no clean sample is left for an interval), then failed without an interval, then too few clean
    samples, then the rule."""
    short = shortfall(measurements, min_samples)
    if short is not None and short.cause is VerdictCause.disturbed:
        return short
    if vs_human is None:
        return interval_verdict(None, margin, noise, 0)
    if short is not None:
        return short
    n = min(len(a.samples(measurements.primary_metric)) for a in measurements.arms
            if a.arm in ("agent", "human"))
    return interval_verdict(vs_human, margin, noise, n)
