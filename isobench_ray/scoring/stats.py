"""Statistics of a 3-way benchmark: bootstrap intervals of speedups, the task's own noise, the strict class.

Pure functions over samples. A speedup is a ratio of medians oriented so that > 1 is faster; its 95%
interval is a bootstrap (scipy.stats.bootstrap, percentile method) resampling each arm's samples
independently. The noise floor is the same statistic for baseline against a second baseline arm run in
the same rounds: what "no change" looks like on this task, on this machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from isobench_ray.schema import HardClass

MIN_BAND_PCT = 5.0  # the ISO-Bench band; a noisy task gets a wider one


@dataclass(frozen=True)
class Interval:
    point: float
    low: float
    high: float

    @property
    def half_width_pct(self) -> float:
        """Half the interval's width, relative to the point estimate, in percent."""
        return (self.high - self.low) / 2 / self.point * 100 if self.point else float("inf")


def speedup_interval(samples: list[float], reference: list[float], higher_is_better: bool, *,
                     confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> Interval | None:
    """Median(samples)/median(reference), oriented so > 1 is faster, with a bootstrap interval."""
    x, y = np.asarray(samples, float), np.asarray(reference, float)
    if len(x) == 0 or len(y) == 0 or np.any(x <= 0) or np.any(y <= 0):
        return None
    num, den = (x, y) if higher_is_better else (y, x)

    def ratio(a, b, axis=-1):
        return np.median(a, axis=axis) / np.median(b, axis=axis)

    point = float(ratio(num, den))
    if len(x) < 2 or len(y) < 2:
        return Interval(point, float("-inf"), float("inf"))
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        return Interval(point, point, point)
    res = stats.bootstrap((num, den), ratio, vectorized=True, paired=False, confidence_level=confidence,
                          n_resamples=n_resamples, method="percentile", rng=np.random.default_rng(seed))
    return Interval(point, float(res.confidence_interval.low), float(res.confidence_interval.high))


def noise_pct(aa: Interval | None) -> float | None:
    """The task's own noise from an A/A interval: how far 'no change' strays from 1, in percent."""
    if aa is None or not np.isfinite(aa.low) or not np.isfinite(aa.high):
        return None
    return max(abs(aa.point - 1.0), aa.high - 1.0, 1.0 - aa.low) * 100


def band_pct(noise: float | None) -> float:
    return max(MIN_BAND_PCT, 2 * noise) if noise is not None else MIN_BAND_PCT


def hard_class_ci(agent_vs_human: Interval | None, band: float) -> HardClass:
    """`beats` only if the whole interval is above +band, `worse` only if wholly below -band,
    `similar` if it lies wholly within the band, otherwise `inconclusive`."""
    if agent_vs_human is None:
        return HardClass.failed
    low, high = (agent_vs_human.low - 1) * 100, (agent_vs_human.high - 1) * 100
    if low > band:
        return HardClass.beats
    if high < -band:
        return HardClass.worse
    if -band <= low and high <= band:
        return HardClass.similar
    return HardClass.inconclusive


def not_discriminative(human_speedup: Interval | None, noise: float | None) -> bool:
    """The human commit's speedup lies inside the task's own noise: scoring agents here scores noise."""
    if human_speedup is None or noise is None:
        return False
    return abs(human_speedup.point - 1.0) * 100 <= 2 * noise
