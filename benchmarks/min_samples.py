"""How many samples per arm before a bootstrap interval can be trusted? The figure behind `min_samples`.

    .venv/bin/python benchmarks/min_samples.py [--pairs 300]

Draws A/A pairs (agent and baseline from the same distribution) and a noise arm, n samples each, with
log-normal noise at the coefficients of variation measured on the demo suite (docs/measurement.md: 1.5%
latency, 7% serving) and on the H100 machine of the quiet-slot issue (13% unpinned), and runs the harness's
own statistics on them (scoring/stats.py): the share of 95% intervals that contain the true ratio 1
(coverage) and the share of A/A pairs the strict rule calls beats or worse. Prints one row per (CV, n).
"""

from __future__ import annotations

import argparse

import numpy as np

from isobench_ray.scoring.stats import band_pct, hard_class_ci, noise_pct, speedup_interval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=300)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'CV %':>5} {'n':>3} {'coverage %':>11} {'A/A beats|worse %':>18} {'median half-width %':>20}")
    for cv in (1.5, 7.0, 13.0):
        for n in range(2, 9):
            covered = wrong = 0
            widths = []
            for i in range(args.pairs):
                base, agent, base2 = (rng.lognormal(0.0, cv / 100, n) for _ in range(3))
                iv = speedup_interval(list(agent), list(base), True, n_resamples=500, seed=i)
                aa = speedup_interval(list(base2), list(base), True, n_resamples=500, seed=i + 1)
                covered += iv.low <= 1.0 <= iv.high
                wrong += hard_class_ci(iv, band_pct(noise_pct(aa))).value in ("beats", "worse")
                widths.append(iv.half_width_pct)
            print(f"{cv:5.1f} {n:3d} {100 * covered / args.pairs:11.1f} {100 * wrong / args.pairs:18.1f} "
                  f"{float(np.median(widths)):20.2f}")


if __name__ == "__main__":
    main()
