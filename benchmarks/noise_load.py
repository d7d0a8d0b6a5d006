"""Calibration of the verdict policies on this machine, with and without load (`noise.py --load N`).

Every attempt runs five arms in interleaved, rotated rounds, as the harness does (stages/benchmark.py:
arm_order: B H A B2, H A B2 B, ...), each (arm, round) a fresh process doing fixed pure-Python work, timed inside the process:

    baseline, baseline2, noop: 2 units of work        human, agent: 1 unit (the human commit is 2x faster)

Each attempt gives two pairs that every policy (scoring/policies.py) classifies, agent against human:
- an A/A pair: the agent arm does exactly the human's work (truth: equal), so `beats` or `worse` is false;
- a 2x pair: the noop arm (baseline work) as the agent (truth: 2x slower), so `similar` is false.
Conditions alternate attempt by attempt: N busy processes spinning on the cores (one per core in turn), and
none. The strict rule is computed with both interval estimates (independent and paired, scoring/stats.py).
The attempts are written as a run directory (attempts/<id>/measurements.json, record.json, run.json), so
`isobench regrade DIR --policy ...` works on them.
"""

from __future__ import annotations

import collections
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from isobench_ray.config import Settings
from isobench_ray.schema import ArmResult, Attempt, AttemptRecord, Measurements, Run, Status
from isobench_ray.scoring import hard, stats
from isobench_ray.scoring.policies import POLICIES, Grading
from isobench_ray.store import RunStore

WORK = "import sys, time; t = time.perf_counter(); sum(i * i for i in range(int(sys.argv[1]))); print(time.perf_counter() - t)"
BUSY = "while True: pass"
ARMS = ("baseline", "human", "agent", "baseline2", "noop")
UNITS = {"baseline": 2, "human": 1, "agent": 1, "baseline2": 2, "noop": 2}
METRIC = "avg_latency"


def arm_order(round_index: int) -> list[str]:
    """The harness's rotation (the arm that went first goes last next round), over the five arms."""
    k = round_index % len(ARMS)
    return list(ARMS[k:] + ARMS[:k])


def busy(n: int) -> list[subprocess.Popen]:
    """n processes spinning, the i-th on the i-th core of this process's cores (cycling)."""
    cores = sorted(os.sched_getaffinity(0))
    return [subprocess.Popen([sys.executable, "-S", "-c", BUSY], preexec_fn=lambda c=cores[i % len(cores)]: os.sched_setaffinity(0, {c}))
            for i in range(n)]


def stop(processes: list[subprocess.Popen]) -> None:
    for proc in processes:
        proc.kill()
    for proc in processes:
        proc.wait()


def timed(iterations: int) -> float:
    out = subprocess.run([sys.executable, "-S", "-c", WORK, str(iterations)], capture_output=True, text=True, check=True)
    return float(out.stdout)


def attempt_runs(rounds: int, work: int) -> tuple[dict[str, list[Run]], list[list[str]]]:
    """One attempt's runs: every arm once per round, in the harness's rotated order."""
    runs: dict[str, list[Run]] = collections.defaultdict(list)
    order = []
    for rnd in range(rounds):
        order.append(arm_order(rnd))
        for arm in order[-1]:
            seconds = timed(work * UNITS[arm])
            name = "agent" if arm == "noop" else arm  # the noop arm is the agent of the 2x pair
            runs[arm].append(Run(arm=name, round=rnd, metrics={METRIC: seconds}, duration_s=seconds))
    return runs, order


def measurements(attempt_id: str, runs: dict[str, list[Run]], order: list[list[str]], agent_arm: str) -> Measurements:
    arms = [ArmResult(arm=arm, commit="fixed-work", command=f"{UNITS[src]} units", runs=runs[src])
            for arm, src in (("baseline", "baseline"), ("human", "human"), ("agent", agent_arm), ("baseline2", "baseline2"))]
    other = "noop" if agent_arm == "agent" else "agent"  # the fifth arm, not part of this pair's attempt
    return Measurements(attempt_id=attempt_id, slot="local", primary_metric=METRIC, higher_is_better=False, arms=arms,
                        order=[["agent" if a == agent_arm else a for a in o if a != other] for o in order])


def save(store: RunStore, task: str, agent: str, k: int, m: Measurements, grading: Grading) -> None:
    attempt = Attempt(task_id=task, agent=agent, rollout=k, id=m.attempt_id, repo="fixed-work")
    scores = hard.score(m, grading.margin, grading.confidence, grading.min_samples, method=grading.method)
    store.save_attempt(attempt)
    store.save_stage(attempt.id, "measurements", m)
    store.save_stage(attempt.id, "scores", scores)
    store.save_stage(attempt.id, "record", AttemptRecord(attempt=attempt, status=Status.success, measurements=m, scores=scores))


def classify(m: Measurements, grading: Grading) -> dict[str, str]:
    """Each policy's class; the strict rule with both interval estimates."""
    out = {name: policy(m, grading).hard_class.value for name, policy in POLICIES.items() if name != "strict"}
    for method in ("independent", "paired"):
        g = Grading(grading.margin, grading.confidence, grading.min_samples, method)
        out[f"strict/{method}"] = POLICIES["strict"](m, g).hard_class.value
    return out


def widths(m: Measurements, confidence: float) -> dict[str, tuple[float, bool, float | None]]:
    """Per estimate: the agent/human interval's half-width (percent), whether it holds 1, the A/A noise."""
    out = {}
    for method in ("independent", "paired"):
        ivs = hard.intervals(m, confidence, method)
        iv = ivs["vs_human"]
        out[method] = (iv.half_width_pct, iv.low <= 1.0 <= iv.high, stats.noise_pct(ivs["noise"]))
    return out


def run_conditions(load: int, pairs: int, rounds: int, work: int, store: RunStore, grading: Grading) -> dict:
    """Attempts alternate between the conditions (which goes first alternates too), so drift hits both."""
    got: dict[str, dict] = {}
    conditions = [f"load {load}", "no load"] if load else ["no load"]
    for k in range(pairs):
        for cond in (conditions if k % 2 == 0 else conditions[::-1]):
            held = busy(load) if cond != "no load" else []
            try:
                runs, order = attempt_runs(rounds, work)
            finally:
                stop(held)
            slug = cond.replace(" ", "")
            g = got.setdefault(cond, collections.defaultdict(list))
            for kind, agent_arm in (("A/A", "agent"), ("2x", "noop")):
                m = measurements(f"fixed-{slug}.{'same' if kind == 'A/A' else 'noop'}.{k}", runs, order, agent_arm)
                save(store, f"fixed-{slug}", "same" if kind == "A/A" else "noop", k, m, grading)
                g[kind].append((classify(m, grading), widths(m, grading.confidence)))
            g["samples"] += [r.metrics[METRIC] / UNITS[arm] for arm, rs in runs.items() for r in rs]
    return got


def _share(results: list, policy: str, classes: tuple[str, ...]) -> str:
    hits = sum(c[policy] in classes for c, _ in results)
    return f"{hits}/{len(results)}"


def report(got: dict, elapsed: float, args: str) -> None:
    print(f"\nVerdict calibration on fixed work ({args}; {elapsed:.0f} s)\n")
    names = [n for n in POLICIES if n != "strict"] + ["strict/independent", "strict/paired"]
    print("| condition | policy | A/A called beats or worse | A/A similar | A/A inconclusive | 2x called similar | 2x worse | 2x inconclusive |")
    print("|---|---|---|---|---|---|---|---|")
    for cond, g in got.items():
        for name in names:
            aa, dbl = g["A/A"], g["2x"]
            print(f"| {cond} | {name} | {_share(aa, name, ('beats', 'worse'))} | {_share(aa, name, ('similar',))} | "
                  f"{_share(aa, name, ('inconclusive',))} | {_share(dbl, name, ('similar',))} | {_share(dbl, name, ('worse',))} | "
                  f"{_share(dbl, name, ('inconclusive',))} |")
    print("\n| condition | CV of a unit % | estimate | A/A noise % (median) | A/A half-width % (median) | A/A intervals holding 1 |")
    print("|---|---|---|---|---|---|")
    for cond, g in got.items():
        cv = statistics.stdev(g["samples"]) / statistics.mean(g["samples"]) * 100
        for method in ("independent", "paired"):
            w = [ws[method] for _, ws in g["A/A"]]
            noise = statistics.median(n for _, _, n in w if n is not None)
            print(f"| {cond} | {cv:.1f} | {method} | {noise:.1f} | {statistics.median(x for x, _, _ in w):.1f} | "
                  f"{sum(h for _, h, _ in w)}/{len(w)} |")


def calibrate(load: int, pairs: int, rounds: int, work: int, out: str | None = None) -> None:
    m = Settings().measurement
    grading = Grading(m.hard_band_pct, m.confidence, m.min_samples, stats.DEFAULT_METHOD)
    root = Path(out or tempfile.mkdtemp(prefix="isobench-verdicts-"))
    store = RunStore(root)
    store.write_json("run.json", {"settings": {"hard_band_pct": grading.margin, "confidence": grading.confidence,
                                               "min_samples": grading.min_samples}, "kind": "noise.py --load"})
    started = time.monotonic()
    got = run_conditions(load, pairs, rounds, work, store, grading)
    store.flush()
    report(got, time.monotonic() - started, f"--load {load} --pairs {pairs} --rounds {rounds} --work {work}, "
                                            f"{len(os.sched_getaffinity(0))} cores, run dir {root}")
