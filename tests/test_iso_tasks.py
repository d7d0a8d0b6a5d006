"""The ISO-Bench task set (tasks/vllm.yaml, tasks/sglang.yaml): generated, complete, every normalization said."""

import subprocess
import sys
from pathlib import Path

import yaml

from isobench_ray.tasks import load_tasks

ROOT = Path(__file__).resolve().parents[1]


def test_task_files_load_with_every_task_usable():
    vllm, sglang = load_tasks(ROOT / "tasks" / "vllm.yaml"), load_tasks(ROOT / "tasks" / "sglang.yaml")
    assert not vllm.errors and not sglang.errors
    assert len(vllm.tasks) == 39 and len(sglang.tasks) == 15
    ids = {t.id for t in vllm.tasks}
    assert "vllm-015069b0" in ids  # missing from the upstream mapping, recovered from the pool
    assert {t.repo.name for t in sglang.tasks} == {"sglang"}
    gpus = {t.id: t.benchmark.gpus for t in vllm.tasks + sglang.tasks if t.benchmark.gpus > 1}
    assert gpus == {"vllm-310aca88": 4, "vllm-e7b20426": 4}


def test_the_vllm_suite_names_each_commits_published_build():
    """Runnable as generated (--sandbox local on GPU nodes): every arm's engine is its commit's wheel, and the
    tasks older than vLLM's per-commit wheels say so above themselves."""
    tasks = load_tasks(ROOT / "tasks" / "vllm.yaml").tasks
    assert all(t.repo.wheel and t.repo.wheel.startswith("https://wheels.vllm.ai/{commit}/") for t in tasks)
    assert all(t.per_commit_environment for t in tasks)
    text = (ROOT / "tasks" / "vllm.yaml").read_text()
    assert text.count("predates vLLM's per-commit wheels") == 5
    assert not any(t.repo.wheel for t in load_tasks(ROOT / "tasks" / "sglang.yaml").tasks)



def test_cli_validates_both_files_in_one_call(tmp_path):
    """`isobench tasks validate tasks/vllm.yaml tasks/sglang.yaml`, the issue's command; a broken third file
    fails the call and is named, while the good files are still reported."""
    argv = [sys.executable, "-m", "isobench_ray.cli", "tasks", "validate", "--no-fetch"]
    both = [str(ROOT / "tasks" / "vllm.yaml"), str(ROOT / "tasks" / "sglang.yaml")]
    res = subprocess.run(argv + both, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "vllm.yaml: 39 records, 39 usable tasks, 0 unusable" in res.stdout
    assert "sglang.yaml: 15 records, 15 usable tasks, 0 unusable" in res.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text("tasks: [")
    res = subprocess.run(argv + both + [str(broken)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "broken.yaml" in res.stderr
    assert "sglang.yaml: 15 records, 15 usable tasks" in res.stdout

def test_every_normalization_is_reported_as_a_warning():
    path = ROOT / "tasks" / "vllm.yaml"
    doc = yaml.safe_load(path.read_text())
    written = {(t["id"], n) for t in doc["tasks"] for n in t.get("normalizations", [])}
    reported = {(p.task_id, p.message) for p in load_tasks(path).problems if p.field == "normalized"}
    assert written and written == reported
    assert all(p.severity == "warning" for p in load_tasks(path).problems if p.field == "normalized")
    text = path.read_text()
    for _, note in written:  # and in the file's comments
        assert f"# NORMALIZED: {note}" in text


def test_descriptions_come_from_the_workload_never_the_commit_subject(upstream_samples):
    subjects = [ln.split("|")[2].strip() for ln in (upstream_samples / "vllm_39_benchmarkable_commits.txt").read_text().splitlines()
                if ln.count("|") == 2 and not ln.startswith("#")]
    for task in load_tasks(ROOT / "tasks" / "vllm.yaml").tasks:
        assert "Workload:" in task.description
        assert not any(s in task.description for s in subjects)


def test_generator_is_deterministic_and_matches_the_committed_files(upstream_samples, tmp_path):
    before = {p: (ROOT / "tasks" / p).read_text() for p in ("vllm.yaml", "sglang.yaml")}
    proc = subprocess.run([sys.executable, str(ROOT / "tasks" / "build_iso_tasks.py"), str(upstream_samples)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "NORMALIZED" in proc.stdout and "0 errors left" in proc.stdout
    after = {p: (ROOT / "tasks" / p).read_text() for p in before}
    assert after == before
