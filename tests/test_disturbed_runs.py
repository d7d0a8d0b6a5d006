"""No disturbed sample in a verdict: a run taken while something outside the slot used its cores is flagged,
never counted, and measured again within its round (a bounded number of times), however often it happens;
the rounds do not stop for a narrow interval before every arm has `min_samples` clean samples."""

import subprocess
import sys
import time
from pathlib import Path

from conftest import QUICK_BENCH, commit

from isobench_ray.config import Settings
from isobench_ray.engines import engine_named
from isobench_ray.hardware import Gpus, node_cores
from isobench_ray.sandbox.local import LocalSandboxes
from isobench_ray.schema import ARMS, Attempt, BenchmarkSpec, BenchSlot, NoopSpec, RepoSpec, Run, Task
from isobench_ray.stages.bench_context import BenchContext
from isobench_ray.stages.benchmark import ThreeWayBenchmark
from isobench_ray.stages.rounds import ArmState, stop_reason

# a latency benchmark that waits rather than computes: on its core, the time is the outside load's
BENCH = '''import argparse, json, time
p = argparse.ArgumentParser()
p.add_argument("--model")
p.add_argument("--output-json", type=str, default=None)
a = p.parse_args()
t0 = time.perf_counter()
time.sleep(0.3)
latency = time.perf_counter() - t0
print(f"Avg latency: {latency} seconds")
with open(a.output_json, "w") as f:
    json.dump({"avg_latency": latency, "latencies": [latency], "percentiles": {"50": latency}}, f)
'''


def test_every_run_under_outside_load_is_flagged_never_counted_and_measured_again(tmp_path: Path, make_settings):
    repo = tmp_path / "fake"
    parent = commit(repo, "initial", {"benchmarks/benchmark_latency.py": BENCH, "engine.py": "SLOW = True\n"})
    human = commit(repo, "human", {"engine.py": "SLOW = False\n"})
    task = Task(id="fake", repo=RepoSpec(name="fake", url=str(repo), engine="vllm"), human_commit=human,
                parent_commit=parent, description="d", model="m",
                benchmark=BenchmarkSpec(kind="latency", command="python benchmarks/benchmark_latency.py --model m",
                                        timeout_s=60))
    patch = "--- a/engine.py\n+++ b/engine.py\n@@ -1 +1 @@\n-SLOW = True\n+SLOW = False\n"
    settings = make_settings(**{**QUICK_BENCH, "min_samples": 2, "runs_per_round": 1,
                                "pin_cores": True, "pin_min_cores": 1})  # the benchmark pinned to the slot's one core
    core = node_cores()[-1]
    bench = ThreeWayBenchmark(BenchSlot(name="cpu", cpus=(core,)), settings, sandboxes=LocalSandboxes())
    # outside load on the slot's core for the whole stage, as in test_quiet_slots: every run is disturbed
    burner = subprocess.Popen([sys.executable, "-c", f"import os; os.sched_setaffinity(0, [{core}])\nwhile True: pass"])
    try:
        time.sleep(0.3)
        m, _ = bench.run(Attempt.make(task, NoopSpec(name="noop"), 0, "x"), task, patch)
    finally:
        burner.kill()
        burner.wait()

    assert [a.arm for a in m.arms] == list(ARMS) and all(a.failure_cause is None for a in m.arms), m.arms
    for arm in m.arms:
        for rnd in range(2):
            runs = [r for r in arm.runs if r.round == rnd]
            # measured once as planned, then again (runs_per_round extra tries), and no further
            assert len(runs) == 2 * settings.measurement.runs_per_round, (arm.arm, rnd, runs)
            for r in runs:
                assert r.outside_load > settings.slots.outside_load_max, r  # the burner was seen ...
                assert r.disturbed and not r.is_sample, r  # ... and no disturbed run counts, the re-measure's neither
        assert arm.samples(m.primary_metric) == []
    assert m.stop_reason.startswith("max rounds (2): disturbed: arm baseline has 0 clean samples of 2"), m.stop_reason
    assert m.slot_s >= m.duration_s > 0


def _states(clean: dict[str, int], disturbed: int = 0) -> dict[str, ArmState]:
    """Arms whose clean samples are all alike (an interval of width 0), with some disturbed runs besides."""
    value = {"baseline": 1.0, "human": 0.8, "agent": 0.5}
    return {arm: ArmState(result_runs=[Run(arm=arm, round=i, metrics={"avg_latency": value[arm]}) for i in range(n)]
                          + [Run(arm=arm, round=0, disturbed=True, metrics={"avg_latency": value[arm]})] * disturbed)
            for arm, n in clean.items()}


def test_a_decided_verdict_does_not_stop_the_rounds_before_every_arm_has_its_clean_samples(tmp_path):
    settings = Settings(rounds=2, max_rounds=6, min_samples=4, runs_per_round=2, noise_arm=False,
                        cache_dir=str(tmp_path / "c"), work_dir=str(tmp_path / "w"))
    task = Task(id="fake", repo=RepoSpec(name="fake", url=str(tmp_path), engine="vllm"), human_commit="a" * 40,
                parent_commit="b" * 40, description="d", model="m",
                benchmark=BenchmarkSpec(kind="latency", command="python benchmarks/benchmark_latency.py --model m"))
    engine = engine_named("vllm")
    ctx = BenchContext(slot=BenchSlot(name="s"), settings=settings, gpus=Gpus(()), engine=engine, task=task,
                       bench=engine.bench_command(task.benchmark, None), sandbox_of={}, trees={}, io={}, guard=None, base=tmp_path, logs={})
    full = {"baseline": 4, "human": 4, "agent": 4}
    assert stop_reason(ctx, _states(full), 2).startswith("decided after 2 rounds: beats")
    short = {"baseline": 4, "human": 3, "agent": 4}  # the human's fourth run was disturbed: not a sample
    assert stop_reason(ctx, _states(short, disturbed=1), 2) == ""
    assert stop_reason(ctx, _states(short, disturbed=1), 5) == ""
    assert stop_reason(ctx, _states(short, disturbed=1), 6).startswith(
        "max rounds (6): disturbed: arm human has 3 clean samples of 4")
