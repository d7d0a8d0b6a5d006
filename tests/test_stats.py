"""Bootstrap intervals, the noise floor and the strict class."""

import numpy as np
import pytest

from isobench_ray.schema import HardClass
from isobench_ray.scoring.stats import Interval, band_pct, hard_class_ci, noise_pct, not_discriminative, speedup_interval


def _noisy(center, n, cv, seed):
    return list(np.random.default_rng(seed).normal(center, center * cv, n))


def test_identical_code_gives_an_interval_around_one():
    iv = speedup_interval(_noisy(100, 8, 0.03, 1), _noisy(100, 8, 0.03, 2), higher_is_better=True)
    assert iv.low < 1.0 < iv.high
    assert 0 < iv.half_width_pct < 10


def test_a_real_speedup_is_clear_of_one_and_oriented():
    fast_latency, slow_latency = _noisy(0.5, 6, 0.03, 3), _noisy(1.0, 6, 0.03, 4)
    iv = speedup_interval(fast_latency, slow_latency, higher_is_better=False)
    assert iv.low > 1.8 and iv.point == pytest.approx(np.median(slow_latency) / np.median(fast_latency))


def test_more_samples_narrow_the_interval():
    wide = speedup_interval(_noisy(100, 3, 0.05, 5), _noisy(100, 3, 0.05, 6), True)
    narrow = speedup_interval(_noisy(100, 30, 0.05, 5), _noisy(100, 30, 0.05, 6), True)
    assert narrow.half_width_pct < wide.half_width_pct


def test_noise_raises_what_beats_and_worse_must_clear_beyond_the_margin():
    assert band_pct(None) == 5.0 and band_pct(1.0) == 5.0
    assert noise_pct(Interval(1.01, 0.96, 1.08)) == pytest.approx(8.0)
    assert band_pct(noise_pct(Interval(1.01, 0.96, 1.08))) == pytest.approx(8.0)
    assert band_pct(3.0, margin=2.0) == 3.0


@pytest.mark.parametrize("iv, noise, expected", [
    (Interval(1.20, 1.10, 1.30), None, HardClass.beats),
    (Interval(1.20, 1.03, 1.30), None, HardClass.inconclusive),  # point beats, interval does not
    (Interval(1.00, 0.98, 1.02), None, HardClass.similar),
    (Interval(0.80, 0.70, 0.90), None, HardClass.worse),
    (Interval(1.20, 1.10, 1.30), 12.0, HardClass.inconclusive),  # a noisy task needs a larger gain
    (Interval(1.00, 0.98, 1.02), 40.0, HardClass.similar),  # and noise never takes `similar` away from a tight one
    (Interval(0.45, 0.39, 0.52), 74.0, HardClass.inconclusive),  # -48..-61% is never similar, however noisy
])
def test_strict_class_asks_the_whole_interval(iv, noise, expected):
    assert hard_class_ci(iv, 5.0, noise) is expected


def test_a_human_speedup_inside_the_noise_is_flagged():
    assert not_discriminative(Interval(1.04, 1.0, 1.08), noise=3.0)
    assert not not_discriminative(Interval(2.0, 1.9, 2.1), noise=3.0)
