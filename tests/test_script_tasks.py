"""The `script` benchmark kind: a task's performance tests (ISO-Bench's and GSO's conventions) measured in every
arm like any benchmark, their equivalence check as the correctness check."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import QUICK_BENCH

from isobench_ray import demo
from isobench_ray.engines.base import BadMetrics
from isobench_ray.engines.parsing import NoMetricsError
from isobench_ray.engines.scripts import METRIC, parse_results, runner_text
from isobench_ray.sandbox import make_sandboxes
from isobench_ray.schema import Attempt, BenchSlot, NoopSpec, PerfScript
from isobench_ray.scoring import correctness
from isobench_ray.stages.benchmark import ThreeWayBenchmark
from isobench_ray.tasks import load_tasks

ISO = PerfScript(name="a.py", text="t = time.perf_counter()", convention="iso")
GSO = PerfScript(name="b.py", text="t = timeit.timeit()", convention="gso")


def test_both_conventions_are_read_and_the_metric_is_their_geometric_mean():
    text = 'a.py {"avg_ms": 4.0, "p50_ms": 3.9}\nb.py Execution time: 0.016s\nnoise the agent printed\n'
    metrics = parse_results(text, (ISO, GSO))
    assert metrics[f"{METRIC}.a.py"] == 4.0 and metrics[f"{METRIC}.b.py"] == pytest.approx(16.0)
    assert metrics[METRIC] == pytest.approx(8.0)  # sqrt(4 * 16)


@pytest.mark.parametrize("text, error", [
    ('a.py {"avg_ms": 4.0}\n', NoMetricsError),  # b.py said nothing: it failed
    ('a.py {"p50_ms": 4.0}\nb.py Execution time: 1s\n', BadMetrics),
    ('a.py {"avg_ms": 0}\nb.py Execution time: 1s\n', BadMetrics),
    ('a.py {"avg_ms": 1}\nb.py took a while\n', BadMetrics),
])
def test_a_test_without_a_time_fails_the_run(text, error):
    with pytest.raises(error):
        parse_results(text, (ISO, GSO))


def test_the_runner_calls_each_test_in_its_convention():
    runner = runner_text((ISO, GSO))
    assert 'python .isobench-perf/a.py "$@" --prefix .isobench-perf/a.py' in runner
    assert 'python .isobench-perf/b.py .isobench-perf/b.py.out "$@" --file_prefix .isobench-perf/b.py' in runner
    assert "IMPL_TAG=isobench COMMIT_HASH=reference" in runner  # one reference name for every arm


def _task_file(tmp_path, scripts: list, **bench) -> str:
    doc = yaml.safe_load(demo.TASKS_FILE.read_text())
    task = next(t for t in doc["tasks"] if t["id"] == "demo-sampler-script")
    task["benchmark"] = {"kind": "script", "scripts": scripts, **bench}
    doc["tasks"] = [task]
    for spec in doc["repos"].values():
        spec["url"] = str((demo.TASKS_FILE.parent / spec["url"]).resolve())
    (tmp_path / "tasks.yaml").write_text(yaml.safe_dump(doc))
    return str(tmp_path / "tasks.yaml")


def test_a_file_of_unit_tests_is_no_performance_test_and_is_named(tmp_path):
    unit = "def test_sampler():\n    assert 1 + 1 == 2\n"
    loaded = load_tasks(_task_file(tmp_path, [{"name": "test_unit.py", "text": unit}]))
    (problem,) = loaded.errors
    assert problem.task_id == "demo-sampler-script" and problem.field == "benchmark.scripts[0]"
    assert "unit tests" in problem.message and "not a performance test" in problem.message


@pytest.mark.parametrize("scripts, field", [
    ([], "benchmark.scripts"),
    ([{"path": "nowhere.py"}], "benchmark.scripts[0].path"),
    ([{"name": "../escape.py", "text": "time.perf_counter()"}], "benchmark.scripts[0].name"),
    ([{"name": "x.py", "text": "time.perf_counter()", "convention": "pytest"}], "benchmark.scripts[0].convention"),
])
def test_bad_script_entries_are_named(tmp_path, scripts, field):
    loaded = load_tasks(_task_file(tmp_path, scripts))
    assert [p.field for p in loaded.errors] == [field], loaded.errors


@pytest.mark.slow  # three arms in bubblewrap, twice
def test_a_script_task_is_measured_and_a_patch_that_changes_its_results_is_broken(make_settings):
    demo.build_repo()
    task = next(t for t in load_tasks(demo.TASKS_FILE).tasks if t.id == "demo-sampler-script")
    broken = next(json.loads(line)["model_patch"] for line in demo.PREDICTIONS.read_text().splitlines()
                  if json.loads(line)["instance_id"] == task.id)
    settings = make_settings(**{**QUICK_BENCH, "check_correctness": True})
    bench = ThreeWayBenchmark(BenchSlot(name="cpu"), settings, sandboxes=make_sandboxes(settings))
    for patch, verdict in (("", "preserved"), (broken, "broken")):
        measured, logs = bench.run(Attempt.make(task, NoopSpec(name="x"), 0, "x"), task, patch)
        assert measured.primary_metric == METRIC and not measured.higher_is_better
        assert [a.failure_cause for a in measured.arms] == [None, None, None], [a.detail for a in measured.arms]
        samples = {a.arm: sorted(a.samples(METRIC)) for a in measured.arms}
        assert all(samples.values()) and samples["human"][-1] < samples["baseline"][0]  # the human's sampler: faster
        assert correctness.check(measured)[0] == verdict, correctness.check(measured)
    agent = measured.arm("agent")
    assert agent.equivalent is False and "greedy tokens differ" in agent.greedy_detail


# ---------------------------------------------------------------- records that carry tests (both upstream shapes)

SAMPLER_TEST = (demo.DEMO_DIR / "perf" / "test_sampler.py").read_text()
HUMAN, PARENT = "2de3c3514d9f8c9b63e7c106d871f58e75cb943c", "50ae9edba1562cd9f769614ec3409ab9d587a942"


def _released(**overrides) -> dict:
    """A record of the released dataset's shape (dataset-records.md): no parent field, the parent is commit_hash^."""
    return {"commit_hash": HUMAN, "pr_url": None, "models": ["demo-tiny"], "perf_command": None,
            "commit_subject": "[Perf] Vectorize the sampler across the batch", "commit_date": "2024-06-09T16:00:00+00:00",
            "files_changed": ["minillm/sampler.py"], "functions_changed": ["minillm/sampler.py:Sampler.__call__"],
            "stats": {"num_files": 1, "num_hunks": 2}, "diff_text": "...", "has_serving": False,
            "test_script": SAMPLER_TEST, "repo": "minillm", **overrides}


def _canonical(**overrides) -> dict:
    """A canonical (GSO/SWE-Perf shaped) record, with the Infinity upstream files hold in duration_changes."""
    return {"repo": "OmniPerf-Bench/minillm", "instance_id": "OmniPerf-Bench__minillm-2de3c35", "created_at": "2024-06-09",
            "base_commit": PARENT, "head_commit": HUMAN, "patch": "...", "test_patch": "",
            "efficiency_test": [SAMPLER_TEST], "duration_changes": [{"base": [float("inf")], "head": [0.4]}],
            "human_performance": float("nan"), **overrides}


def test_records_of_both_upstream_shapes_become_script_tasks(tmp_path):
    demo.build_repo()
    repo = demo.REPO_DIR
    lines = [json.dumps(_released()), json.dumps(_canonical()),
             json.dumps(_released(commit_hash=HUMAN, models='["demo-tiny"]', test_script=SAMPLER_TEST.replace(
                 "--prefix", "--file_prefix")))]  # the parquet release's string-typed list; a GSO-convention test
    assert "Infinity" in lines[1] and "NaN" in lines[1]  # as upstream files have them: not strict JSON
    (tmp_path / "records.jsonl").write_text("\n".join(lines[:2]) + "\n")
    loaded = load_tasks(tmp_path / "records.jsonl", repo=str(repo))
    assert not loaded.errors, loaded.errors
    released, canonical = loaded.tasks
    assert released.parent_commit == PARENT  # commit_hash^, resolved with git
    assert released.benchmark.kind == canonical.benchmark.kind == "script"
    assert released.commit_date == "2024-06-09T16:00:00+00:00" and canonical.id == "OmniPerf-Bench__minillm-2de3c35"
    assert canonical.benchmark.scripts[0].text == SAMPLER_TEST and canonical.benchmark.scripts[0].convention == "iso"
    (tmp_path / "gso.jsonl").write_text(lines[2] + "\n")
    gso = load_tasks(f"hf:{tmp_path / 'gso.jsonl'}", repo=str(repo))  # the hub's loader, on one JSON Lines file
    assert not gso.errors and gso.tasks[0].benchmark.scripts[0].convention == "gso" and gso.tasks[0].model == "demo-tiny"


def test_a_record_whose_test_is_a_unit_test_file_or_lacks_a_commit_is_named(tmp_path):
    demo.build_repo()
    repo = demo.REPO_DIR
    unit = "import pytest\n\ndef test_sampler_shapes():\n    assert True\n"
    lines = [json.dumps(_canonical(efficiency_test=[unit])), json.dumps(_canonical(instance_id="no-head", head_commit=None))]
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    loaded = load_tasks(tmp_path / "bad.jsonl", repo=str(repo))
    assert not loaded.tasks
    named = {(p.task_id, p.field) for p in loaded.errors}
    assert ("OmniPerf-Bench__minillm-2de3c35", "benchmark.scripts[0]") in named
    assert any(task == "no-head" and "human_commit" in field for task, field in named), loaded.errors
    assert all(p.source.endswith("bad.jsonl") for p in loaded.errors)
