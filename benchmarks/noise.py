"""A/A noise on the demo suite: how noisy is each task, how many rounds do intervals need, and does any
A/A pair get classified as anything but `similar`?

    .venv/bin/python benchmarks/noise.py [--rollouts 3] [--max-rounds 8]
    .venv/bin/python benchmarks/noise.py --compare-pinning [--serving-only] [--rollouts 2] [--rounds 5] [--floor-runs 6]
    .venv/bin/python benchmarks/noise.py --load N [--pairs 24] [--rounds 5] [--work 1000000]

--load N (N = 0: without load only) calibrates the verdict policies on fixed work instead of the demo engine:
benchmarks/noise_load.py.

Runs the `noop` agent (agent arm = baseline code) over every demo task; every attempt also carries the
baseline2 arm. Each attempt gives two A/A pairs: noop vs baseline and baseline2 vs baseline. Prints, per
task, the coefficient of variation of the primary metric, the interval half-width reached, the rounds it
took, and the classification of every A/A pair under the strict rule (hard_class_ci, the task's band)
and under the paper's rule (point estimate against ±5%).
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from isobench_ray import demo, runner
from isobench_ray.agents import parse_agents
from isobench_ray.config import Settings
from isobench_ray.scoring.hard import hard_class
from isobench_ray.scoring.stats import hard_class_ci, speedup_interval
from isobench_ray.store import RunStore

# A fixed piece of pure-Python work: what identical CPU work costs from one fresh process to the next, alone
# on one pinned core. Its spread is the machine's floor, which no pinning inside the machine can remove.
_FLOOR_WORK = "import sys, time; t = time.perf_counter(); sum(i * i for i in range(int(sys.argv[1]))); print(time.perf_counter() - t)"


def host_floor(runs: int, iterations: int = 30_000_000) -> list[float]:
    """Seconds taken by `runs` fresh processes doing the same fixed work, each alone on the last core. The
    default size takes 2-3 s here, about as long as one run of a demo serving task; shorter work spreads more
    (a tenth of it: CV 25% against 10%, docs/measurement.md)."""
    core = {max(os.sched_getaffinity(0))}
    return [float(subprocess.run([sys.executable, "-c", _FLOOR_WORK, str(iterations)], capture_output=True, text=True,
                                 check=True, preexec_fn=lambda: os.sched_setaffinity(0, core)).stdout)
            for _ in range(runs)]


def _cv(values: list[float]) -> float:
    return statistics.stdev(values) / statistics.mean(values) * 100


def _ratio(pinned: list[float], unpinned: list[float]) -> str:
    """median(pinned) / median(unpinned) with its 95% bootstrap interval over the attempts."""
    iv = speedup_interval(pinned, unpinned, higher_is_better=True)
    return "-" if iv is None else f"{iv.point:.2f} [{iv.low:.2f}, {iv.high:.2f}]"


def compare_pinning(args) -> None:
    """A/A noise with pinning off and on, interleaved: rollout k of each mode runs before rollout k+1 of
    either (and the mode that goes first alternates), so drift in the machine hits both alike. Between
    rollouts, the machine's own floor is sampled (`host_floor`)."""
    import yaml

    demo.build_repo()
    base = Path(args.out or tempfile.mkdtemp(prefix="isobench-pinning-"))
    tasks = [t["id"] for t in yaml.safe_load(demo.TASKS_FILE.read_text())["tasks"]
             if not args.serving_only or t["benchmark"]["kind"] == "serving"]
    started, floor = time.monotonic(), []
    for k in range(1, args.rollouts + 1):
        for pin in ((False, True) if k % 2 else (True, False)):
            settings = Settings(cache_dir=str(base / "cache"), work_dir=str(base / "work"), rounds=args.rounds,
                                max_rounds=args.rounds, pin_cores=pin, pin_min_cores=2)
            runner.run(str(demo.TASKS_FILE), parse_agents("noop"), base / ("pinned" if pin else "unpinned"), settings,
                       task_ids=tasks, rollouts=k, show_progress=False)
            floor += host_floor(args.floor_runs)
    elapsed = time.monotonic() - started
    print(f"\nA/A noise with pinning off and on, interleaved: {args.rollouts} noop attempts per task and mode, "
          f"{args.rounds} rounds each ({elapsed:.0f} s, run dirs under {base})")
    print("CV: over every sample of the three identical arms (baseline, noop agent, baseline2) of an attempt; "
          "noise: the attempt's noise_pct; half-width: noop vs baseline. Medians over the attempts.\n")
    print(f"{'task':30} {'mode':9} {'CV %':>6} {'noise %':>8} {'half-width %':>13} {'median':>9} {'cores (server | client)':>24}")
    figures: dict[tuple[str, str], dict[str, list[float]]] = {}
    for mode in ("unpinned", "pinned"):
        per_task = collections.defaultdict(list)
        for record in RunStore(base / mode).records():
            per_task[record.attempt.task_id].append(record)
        for task_id, records in sorted(per_task.items()):
            got, cores = collections.defaultdict(list), ""
            for rec in records:
                m, s = rec.measurements, rec.scores
                if m is None or s is None:
                    continue
                samples = {arm: m.arm(arm).samples(m.primary_metric) for arm in ("baseline", "agent", "baseline2")}
                got["CV"].append(_cv([x for xs in samples.values() for x in xs]))
                got["noise"].append(s.noise_pct or 0.0)
                got["half-width"].append(speedup_interval(samples["agent"], samples["baseline"], s.higher_is_better).half_width_pct)
                got["median"].append(statistics.median(samples["baseline"]))
                arm = m.arm("baseline")
                cores = f"{','.join(map(str, arm.server_cpus)) or '-'} | {','.join(map(str, arm.client_cpus)) or '-'}"
            figures[(task_id, mode)] = got
            cv, noise, width, median = (statistics.median(got[k]) for k in ("CV", "noise", "half-width", "median"))
            print(f"{task_id:30} {mode:9} {cv:6.2f} {noise:8.2f} {width:13.2f} {median:9.1f} {cores:>24}")
    print("\nPinned / unpinned, medians over the attempts with 95% bootstrap intervals (below 1: pinning is quieter; "
          "'median' is the metric itself):")
    for task_id in sorted({t for t, _ in figures}):
        if (task_id, "pinned") in figures and (task_id, "unpinned") in figures:
            p, u = figures[(task_id, "pinned")], figures[(task_id, "unpinned")]
            print(f"{task_id:30} " + ", ".join(f"{name} {_ratio(p[name], u[name])}" for name in ("CV", "noise", "half-width", "median")))
    print(f"\nThe machine's floor: the same pure-Python work in {len(floor)} fresh processes, each alone on core "
          f"{max(os.sched_getaffinity(0))}, interleaved with the runs: median {statistics.median(floor):.3f} s, "
          f"range {min(floor):.3f}-{max(floor):.3f} s, CV {_cv(floor):.2f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-rounds", type=int, default=8)
    parser.add_argument("--out", default=None, help="run directory (default: a temporary one)")
    parser.add_argument("--compare-pinning", action="store_true", help="A/A with core pinning off and on, interleaved")
    parser.add_argument("--serving-only", action="store_true", help="with --compare-pinning: only the serving tasks")
    parser.add_argument("--floor-runs", type=int, default=6,
                        help="with --compare-pinning: fixed-work processes timed after each run (the machine's floor)")
    parser.add_argument("--load", type=int, default=None,
                        help="calibrate the verdict policies on fixed work, with N busy processes on the cores and without")
    parser.add_argument("--pairs", type=int, default=24, help="with --load: attempts per condition")
    parser.add_argument("--work", type=int, default=1_000_000, help="with --load: the human arm's loop iterations")
    args = parser.parse_args()
    if args.compare_pinning:
        compare_pinning(args)
        return
    if args.load is not None:
        import noise_load

        noise_load.calibrate(args.load, args.pairs, Settings(rounds=args.rounds).measurement.min_rounds, args.work, args.out)
        return
    demo_aa(args)


def demo_aa(args) -> None:
    """The noop agent over the demo suite: per task, CV, half-width, rounds, noise, and every A/A pair's class."""
    demo.build_repo()
    out = Path(args.out or tempfile.mkdtemp(prefix="isobench-noise-"))
    settings = Settings(rounds=args.rounds, max_rounds=args.max_rounds)
    started = time.monotonic()
    runner.run(str(demo.TASKS_FILE), parse_agents("noop"), out, settings, rollouts=args.rollouts, show_progress=False)
    elapsed = time.monotonic() - started

    per_task = collections.defaultdict(list)
    for record in RunStore(out).records():
        per_task[record.attempt.task_id].append(record)
    strict, paper = collections.Counter(), collections.Counter()
    print(f"\nA/A on the demo suite: {args.rollouts} noop attempts per task, rounds {args.rounds}..{args.max_rounds}, "
          f"rounds stop on a decided verdict ({elapsed:.0f} s, run dir {out})\n")
    print(f"{'task':30} {'metric':20} {'CV %':>6} {'half-width %':>13} {'rounds':>7} {'noise %':>8} {'band %':>7}  pairs (strict / paper)")
    for task_id, records in sorted(per_task.items()):
        cvs, widths, rounds, noises, bands, labels = [], [], [], [], [], []
        for rec in records:
            m, s = rec.measurements, rec.scores
            if m is None or s is None:
                labels.append(f"{rec.failure_cause}")
                continue
            base = m.arm("baseline").samples(m.primary_metric)
            cvs.append(_cv(base))
            rounds.append(len(m.order))
            noises.append(s.noise_pct or 0.0)
            bands.append(s.band_pct)
            for arm in ("agent", "baseline2"):
                iv = speedup_interval(m.arm(arm).samples(m.primary_metric), base, s.higher_is_better)
                widths.append(iv.half_width_pct)
                strict_class = hard_class_ci(iv, s.margin_pct, s.noise_pct)
                paper_class = hard_class((iv.point - 1) * 100, 5.0)
                strict[strict_class.value] += 1
                paper[paper_class.value] += 1
                labels.append(f"{strict_class.value}/{paper_class.value}")
        print(f"{task_id:30} {records[0].scores.primary_metric if records[0].scores else '-':20} "
              f"{statistics.median(cvs):6.2f} {statistics.median(widths):13.2f} {statistics.median(rounds):7.0f} "
              f"{statistics.median(noises):8.2f} {statistics.median(bands):7.2f}  {', '.join(labels)}")
    pairs = sum(strict.values())
    print(f"\nA/A pairs: {pairs}. Strict rule (hard_class_ci): {dict(strict)}. Paper's rule (point vs ±5%): {dict(paper)}.")
    print(f"A/A pairs classified beats or worse: strict {strict['beats'] + strict['worse']} of {pairs}, "
          f"paper {paper['beats'] + paper['worse']} of {pairs}")


if __name__ == "__main__":
    main()
