"""Verdict policies: one pure function per way of calling agent vs human from the stored samples.

Each takes an attempt's Measurements and the grading settings and returns a Verdict (class, cause, reason).
`isobench regrade` (regrade.py) applies one to every attempt of a run; `score` applies `paper` and `strict`.

- paper: the ISO-Bench rule, the point estimate (ratio of medians) against ±margin.
- strict: the whole interval (scoring/verdicts.py): similar inside ±margin, beats/worse beyond ±max(margin, noise).
- gso: GSO's target: the agent's speedup over baseline >= 1.1x and >= 0.95x the human's, on geometric means of
  the samples; reaching it is `similar` (`beats` when also beyond +margin of the human), missing it `worse`.
- swe-perf: SWE-Perf's test, a two-sided Mann-Whitney U of agent against human samples at 1 - confidence:
  significant is beats/worse by the medians, not significant `similar` (which is how noise passes for
  equivalence: the issue this module's strict rule answers).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from scipy import stats as sps

from isobench_ray.schema import HardClass, Measurements, Status
from isobench_ray.scoring import hard, stats, verdicts
from isobench_ray.scoring.verdicts import Verdict

GSO_BASE_TARGET = 1.1  # speedup over baseline a GSO solution needs
GSO_HUMAN_TARGET = 0.95  # and the share of the human's speedup


@dataclass(frozen=True)
class Grading:
    """What a policy may use besides the samples (the run's settings: hard_band_pct, confidence, min_samples)."""

    margin: float = 5.0
    confidence: float = 0.95
    min_samples: int = 5
    method: stats.Method = stats.DEFAULT_METHOD


def _failed(m: Measurements) -> Verdict | None:
    """Failed (an arm failed), or inconclusive where an arm has no clean sample at all (every run disturbed):
    no policy has a number to judge then."""
    status, cause, detail = hard.outcome(m)
    if status is Status.success:
        return verdicts.shortfall(m, 1)
    return Verdict(HardClass.failed, None, f"failed: {cause.value if cause else status.value} {detail}".strip()[:200])


def _oriented(m: Measurements, arm: str) -> list[float]:
    return [x for x in hard.samples_of(m, arm) if x > 0]


def paper(m: Measurements, g: Grading) -> Verdict:
    if (failed := _failed(m)) is not None:
        return failed
    b, h, a = (hard.median_of(m, arm) for arm in ("baseline", "human", "agent"))
    pct = (hard.speedup(a, b, m.higher_is_better) / hard.speedup(h, b, m.higher_is_better) - 1) * 100
    return Verdict(hard.hard_class(pct, g.margin), None, f"paper: agent/human {pct:+.1f}% (medians) against ±{g.margin:g}%")


def strict(m: Measurements, g: Grading) -> Verdict:
    if (failed := _failed(m)) is not None:
        return failed
    ivs = hard.intervals(m, g.confidence, g.method)
    return verdicts.strict(m, ivs["vs_human"], stats.noise_pct(ivs["noise"]), g.margin, g.min_samples)


def _gmean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def gso(m: Measurements, g: Grading) -> Verdict:
    if (failed := _failed(m)) is not None:
        return failed
    b, h, a = (_gmean(_oriented(m, arm)) for arm in ("baseline", "human", "agent"))
    over_base, over_human = hard.speedup(a, b, m.higher_is_better), hard.speedup(a, h, m.higher_is_better)
    reached = over_base >= GSO_BASE_TARGET and over_human >= GSO_HUMAN_TARGET
    cls = (HardClass.beats if over_human > 1 + g.margin / 100 else HardClass.similar) if reached else HardClass.worse
    return Verdict(cls, None, f"gso: {over_base:.3f}x over baseline (target {GSO_BASE_TARGET}), {over_human:.3f}x of "
                              f"the human (target {GSO_HUMAN_TARGET}): {'reached' if reached else 'missed'}")


def swe_perf(m: Measurements, g: Grading) -> Verdict:
    if (failed := _failed(m)) is not None:
        return failed
    agent, human = hard.samples_of(m, "agent"), hard.samples_of(m, "human")
    if len(agent) < 2 or len(human) < 2:
        return Verdict(HardClass.inconclusive, None, "swe-perf: under two samples in an arm, no test")
    p = float(sps.mannwhitneyu(agent, human, alternative="two-sided").pvalue)
    faster = hard.speedup(hard.median_of(m, "agent"), hard.median_of(m, "human"), m.higher_is_better) > 1
    alpha = 1 - g.confidence
    cls = HardClass.similar if p >= alpha else (HardClass.beats if faster else HardClass.worse)
    return Verdict(cls, None, f"swe-perf: Mann-Whitney p={p:.3g} (alpha {alpha:.2g}), agent "
                              f"{'faster' if faster else 'slower'} by the medians")


Policy = Callable[[Measurements, Grading], Verdict]
POLICIES: dict[str, Policy] = {"paper": paper, "strict": strict, "gso": gso, "swe-perf": swe_perf}
