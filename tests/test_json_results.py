"""Numbers come from the JSON file the benchmark script writes into a harness-only folder, not from the output
an offline benchmark's (patched) engine can print to: a fake result block changes nothing."""

from pathlib import Path

from conftest import QUICK_BENCH, commit, settings_under

from isobench_ray.engines import engine_named
from isobench_ray.sandbox.local import LocalSandboxes
from isobench_ray.schema import Attempt, BenchmarkSpec, BenchSlot, NoopSpec, RepoSpec, Task
from isobench_ray.stages.benchmark import ThreeWayBenchmark

BENCH = '''import argparse, json, sys, time
sys.path.insert(0, ".")  # the engine of the tree the benchmark runs in
import fakeengine
p = argparse.ArgumentParser()
p.add_argument("--model")
p.add_argument("--output-json", type=str, default=None)
a = p.parse_args()
t0 = time.perf_counter()
fakeengine.generate()
latency = max(time.perf_counter() - t0, 1e-6)
print(f"Avg latency: {latency} seconds")
if a.output_json:
    with open(a.output_json, "w") as f:
        json.dump({"avg_latency": latency, "latencies": [latency], "percentiles": {"50": latency}}, f)
'''
ENGINE = "import time\n\ndef generate():\n    time.sleep(0.02)\n"


def _repo(tmp_path: Path, takes_json: bool) -> tuple[Path, str, str]:
    repo = tmp_path / "fake"
    script = BENCH if takes_json else BENCH.replace('"--output-json"', '"--out"').replace("a.output_json", "a.out")
    parent = commit(repo, "initial", {"benchmarks/benchmark_latency.py": script, "fakeengine.py": ENGINE})
    return repo, parent, commit(repo, "faster", {"fakeengine.py": ENGINE.replace("0.02", "0.01")})


def _measure(tmp_path: Path, takes_json: bool):
    repo, parent, human = _repo(tmp_path, takes_json)
    task = Task(id="fake", repo=RepoSpec(name="fake", url=str(repo), engine="vllm"), human_commit=human,
                parent_commit=parent, description="d", model="m",
                benchmark=BenchmarkSpec(kind="latency", command="python benchmarks/benchmark_latency.py --model m", timeout_s=60))
    # the "agent" patch: the engine prints a result block of its own when the script exits
    cheat = ("--- a/fakeengine.py\n+++ b/fakeengine.py\n@@ -2,3 +2,5 @@ import time\n \n def generate():\n"
             "     time.sleep(0.02)\n+import atexit\n+atexit.register(lambda: print(\"Avg latency: 0.000001 seconds\"))\n")
    settings = settings_under(tmp_path, **QUICK_BENCH)
    bench = ThreeWayBenchmark(BenchSlot(name="cpu", cpus=(0,)), settings, sandboxes=LocalSandboxes())
    attempt = Attempt.make(task, NoopSpec(name="cheat"), 0, "x")
    measurements, logs = bench.run(attempt, task, cheat)
    return {a.arm: a for a in measurements.arms}, logs


def test_a_fake_result_block_printed_by_the_engine_does_not_change_the_numbers(tmp_path):
    arms, logs = _measure(tmp_path, takes_json=True)
    agent = arms["agent"]
    assert agent.failure_cause is None, agent.detail
    assert any("0.000001" in text for key, text in logs.items() if key.startswith("bench/agent"))  # it did print
    for run in agent.runs:
        assert run.metrics["source"] == "json"
        assert run.metrics["avg_latency"] > 0.01  # the sleep, not the printed 1e-6
    assert all(r.metrics["source"] == "json" for a in arms.values() for r in a.runs)


def test_a_script_without_the_json_flag_is_read_from_the_text_and_says_so(tmp_path):
    arms, logs = _measure(tmp_path, takes_json=False)
    assert all(r.metrics["source"] == "text" for a in arms.values() for r in a.runs)
    assert "has no --output-json" in logs["bench/metrics_source.txt"]
    # the text is what the engine printed last: exactly the hole the JSON file closes
    assert arms["agent"].runs[0].metrics["avg_latency"] == 0.000001


def test_json_flags_per_form_only_when_the_script_defines_them():
    vllm, sglang = engine_named("vllm"), engine_named("sglang")
    serve = "python benchmarks/benchmark_serving.py --model m"
    src = 'add_argument("--save-result")\nadd_argument("--result-dir")\nadd_argument("--result-filename")'
    assert vllm.json_result_flags(serve, "/r/a.json", src)[0] == ["--save-result", "--result-dir", "/r", "--result-filename", "a.json"]
    assert vllm.json_result_flags(serve, "/r/a.json", 'add_argument("--save-result")')[1].startswith("the script at this commit has no")
    assert vllm.script_file("vllm bench latency --model m") == "vllm/benchmarks/latency.py"
    assert vllm.json_result_flags("vllm bench throughput --model m", "/r/a.json", "'--output-json'")[0] == ["--output-json", "/r/a.json"]
    assert sglang.script_file("python -m sglang.bench_one_batch --model-path m") == "python/sglang/bench_one_batch.py"
    assert sglang.json_result_flags("python3 -m sglang.bench_serving --model m", "/r/a.json", '"--output-file"')[0] == ["--output-file", "/r/a.json"]
    assert sglang.json_result_flags("python -m sglang.bench_offline_throughput --model-path m", "/r/a.json",
                                    '"--result-filename"')[0] == ["--result-filename", "/r/a.json"]


ONE_BATCH = '''import time
import fakeengine
t0 = time.perf_counter()
fakeengine.generate()
latency = max(time.perf_counter() - t0, 1e-6)
print(f"Benchmark ...\\nPrefill. latency: {latency:.5f} s, throughput: {64 / latency:.2f} token/s")
print(f"Total. latency: {latency:.5f} s, throughput: {64 / latency:.2f} token/s")
'''


def test_a_patch_to_the_benchmark_module_of_a_python_m_form_changes_nothing(tmp_path, make_settings):
    """`python -m sglang.bench_one_batch` runs a module of the tree itself: every arm runs the baseline's copy,
    so an agent that rewrites it to print a fast number measures as what it is (and is flagged)."""
    from isobench_ray.scoring.hacks import scan

    repo = tmp_path / "fake"
    parent = commit(repo, "initial", {"python/sglang/__init__.py": "", "python/sglang/bench_one_batch.py": ONE_BATCH,
                                      "python/fakeengine.py": ENGINE})
    human = commit(repo, "faster", {"python/fakeengine.py": ENGINE.replace("0.02", "0.01")})
    task = Task(id="fake", repo=RepoSpec(name="fake", url=str(repo), engine="sglang", env={"PYTHONPATH": "python"}),
                human_commit=human, parent_commit=parent, description="d", model="m",
                benchmark=BenchmarkSpec(kind="latency", command="python -m sglang.bench_one_batch --model-path m",
                                        timeout_s=60))
    cheat = ("--- a/python/sglang/bench_one_batch.py\n+++ b/python/sglang/bench_one_batch.py\n@@ -3,3 +3,3 @@ import fakeengine\n"
             " t0 = time.perf_counter()\n-fakeengine.generate()\n+pass\n latency = max(time.perf_counter() - t0, 1e-6)\n")
    settings = make_settings(**QUICK_BENCH)
    bench = ThreeWayBenchmark(BenchSlot(name="cpu", cpus=(0,)), settings, sandboxes=LocalSandboxes())
    measurements, _ = bench.run(Attempt.make(task, NoopSpec(name="cheat"), 0, "x"), task, cheat)
    agent = measurements.arm("agent")
    assert agent.failure_cause is None, agent.detail
    assert all(r.metrics["total_latency"] > 0.015 for r in agent.runs)  # the engine's 20 ms, not a skipped call
    assert "edits_benchmark" in scan(cheat, task.benchmark.command, "python/sglang/bench_one_batch.py")
