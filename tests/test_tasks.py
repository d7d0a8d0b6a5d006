"""Task loading and validation: every upstream shape, every problem named with file, task id and field."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from isobench_ray.engines import perf_command as commands
from isobench_ray.tasks import TaskFileError, load_tasks

ROOT = Path(__file__).resolve().parents[1]


def test_vllm_runner_mapping_loads_all_records_and_names_unusable_ones(upstream_samples):
    result = load_tasks(upstream_samples / "mappings" / "vllm_oh_mapping.json")
    assert result.records == 38
    unusable = {p.task_id for p in result.errors}
    assert len(result.tasks) + len(unusable) == 38
    by_task: dict[str, list[str]] = {}
    for p in result.errors:
        by_task.setdefault(p.task_id, []).append(p.message)
    # serving client given offline flags; a dataset file nobody ships
    assert any("--input-len is not an option" in m for m in by_task["89a84b0b"] + by_task["9f1710f1"])
    assert any("local dataset file" in m for m in by_task["9badee53"])
    # benchmark_serving.py's default dataset is ShareGPT, read only from --dataset-path: it stops at once
    assert any("ShareGPT" in m for m in by_task["e3580537"])
    assert "a3223766" not in unusable and "299ebb62" not in unusable  # --dataset-name random / vllm bench serve
    # -tp 4 is a recorded requirement, not a reason to drop the task
    tp4 = next(t for t in result.tasks if t.id == "310aca88")
    assert tp4.benchmark.gpus == 4 and "310aca88" not in unusable
    e3580537 = load_tasks(ROOT / "tasks" / "vllm.yaml").tasks
    e3580537 = next(t for t in e3580537 if t.id == "vllm-e3580537")
    # server flags leave the client command and join the server command, the same for every arm
    assert "--enable-prefix-caching" not in e3580537.benchmark.command
    assert "--enable-prefix-caching" in e3580537.repo.server_command
    assert e3580537.parent_commit == "f508e03e7f2d8aed897d8843e1ed1668e5c4ad7a"
    assert e3580537.benchmark.kind == "serving"


def test_benchmark_mode_mapping_reports_null_and_placeholder_commands(upstream_samples):
    result = load_tasks(upstream_samples / "mappings" / "benchmark_mode_mapping.json")
    assert result.records == 96
    by_task = {}
    for p in result.errors:
        by_task.setdefault(p.task_id, []).append(p.message)
    assert any("missing" in m for m in by_task["3127e975"])  # perf_command: null
    assert any("placeholder" in m and "BS" in m for m in by_task["526de822"])
    assert any("someone's machine" in m for m in by_task["bfdb1ba5"])  # /home/ray/...
    assert any("unknown benchmark script" in m for m in by_task["9323a315"])
    assert any("parent_commit" in p.field for p in result.errors if p.task_id == "ac45c44d")
    assert all(p.source.endswith("benchmark_mode_mapping.json") for p in result.problems)


def test_sglang_mapping_takes_the_explicit_launch_line_as_server(upstream_samples):
    result = load_tasks(upstream_samples / "mappings" / "sglang_oh_mapping.json")
    task = next(t for t in result.tasks if t.id == "021f76e4")
    assert task.repo.name == "sglang"
    assert task.repo.server_command.startswith("python3 -m sglang.launch_server")
    assert task.benchmark.command.startswith("python3 -m sglang.bench_serving")


def test_missing_parent_is_resolved_from_a_local_repo(tiny_repo, tmp_path):
    records = [{"commit_hash": tiny_repo["human"], "perf_command": "python benchmarks/benchmark_latency.py --model m",
                "models": ["m"], "has_latency": True}]
    path = tmp_path / "hf.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records))
    unresolved = load_tasks(path)
    assert not unresolved.tasks and unresolved.errors[0].field == "parent_commit"
    resolved = load_tasks(path, repo=str(tiny_repo["path"]))
    assert resolved.tasks[0].parent_commit == tiny_repo["parent"]
    # the commit's subject ("[Perf] closed form") would give the fix away: it must not leak into the description
    assert resolved.tasks[0].description and "closed form" not in resolved.tasks[0].description.lower()


def test_hf_dataset_records_load_through_datasets(tiny_repo, tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps({"commit_hash": tiny_repo["human"],
                                "perf_command": "python benchmarks/benchmark_throughput.py --model m --input-len 8",
                                "models": ["m"], "commit_message": "[Perf] closed form", "has_throughput": True}) + "\n")
    result = load_tasks(f"hf:{path}", repo=str(tiny_repo["path"]))
    assert [t.benchmark.kind for t in result.tasks] == ["throughput"]
    assert "closed form" not in result.tasks[0].description  # the commit message would give the fix away


def test_hf_local_copy_of_a_hub_dataset_loads_its_configured_split(tiny_repo, tmp_path):
    """A local copy of a hub dataset (parquet files and the README's configs, as `huggingface-cli download`
    leaves it): `hf:FOLDER:CONFIG:SPLIT` reads the split the card declares, offline."""
    import polars as pl

    copy = tmp_path / "ISO-Bench"
    (copy / "data" / "vllm").mkdir(parents=True)
    (copy / "README.md").write_text("---\nconfigs:\n- config_name: default\n  data_files:\n  - split: vllm\n"
                                    "    path: data/vllm/*.parquet\n---\n# a local copy\n")
    pl.DataFrame([{"commit_hash": tiny_repo["human"], "perf_command": "python benchmarks/benchmark_latency.py --model m",
                   "models": ["m"], "has_latency": True}]).write_parquet(copy / "data" / "vllm" / "train.parquet")
    result = load_tasks(f"hf:{copy}:default:vllm", repo=str(tiny_repo["path"]))
    assert [(t.human_commit, t.parent_commit, t.benchmark.kind) for t in result.tasks] == [
        (tiny_repo["human"], tiny_repo["parent"], "latency")]
    # the copy changes (a newer download): its records now, not the ones datasets cached for that folder name
    pl.DataFrame([{"commit_hash": tiny_repo["human"], "perf_command": "python benchmarks/benchmark_throughput.py --model m",
                   "models": ["m"], "has_throughput": True}]).write_parquet(copy / "data" / "vllm" / "train.parquet")
    result = load_tasks(f"hf:{copy}:default:vllm", repo=str(tiny_repo["path"]))
    assert [t.benchmark.kind for t in result.tasks] == ["throughput"]


@pytest.mark.parametrize("body, field, words", [
    ("tasks: [{id: a, repo: r, human_commit: abcdef1, benchmark: {kind: serving, command: x}}]", "repo", "unknown repo"),
    ("repos: {r: {url: .}}\ntasks: [{id: a, repo: r, human_commit: abcdef1, parent_commit: abcdef0, "
     "benchmark: {kind: offline, command: x}}]", "benchmark.kind", "unknown benchmark kind"),
    ("repos: {r: {url: .}}\ntasks: [{id: a, repo: r, human_commit: abcdef1, parent_commit: abcdef0, "
     "benchmark: {kind: latency, command: 'python benchmarks/benchmark_latency.py --model MODEL'}}]", "benchmark.command", "placeholder"),
    ("repos: {r: {url: .}}\ntasks: [{id: a, repo: r, human_commit: zz, benchmark: {kind: latency, command: x}}]",
     "human_commit", "not a commit hash"),
    ("repos: {r: {url: .}}\ntasks: [{id: a, repo: r, human_commit: abcdef1, parent_commit: abcdef0, typo: 1, "
     "benchmark: {kind: latency, command: x}}]", "typo", "unknown field"),
])
def test_yaml_problems_name_file_task_and_field(tmp_path, body, field, words):
    path = tmp_path / "t.yaml"
    path.write_text(body)
    result = load_tasks(path)
    assert not result.tasks
    problem = result.errors[0]
    assert (problem.source, problem.task_id, problem.field) == (str(path), "a", field)
    assert words in problem.message


def test_malformed_file_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("tasks: [unclosed")
    with pytest.raises(TaskFileError, match="broken.yaml"):
        load_tasks(path)


def test_perf_command_analysis():
    cmd = commands.analyze("VLLM_USE_V1=1 python benchmarks/benchmark_serving.py --model m --dtype float16 --port 8000 --num-prompts 10")
    assert cmd.kind == "serving" and cmd.env == {"VLLM_USE_V1": "1"}
    assert cmd.server_args == ["--dtype", "float16"]
    assert "--port" not in cmd.argv and cmd.command.startswith("VLLM_USE_V1=1 python")
    assert commands.analyze("vllm bench throughput --model m").kind == "throughput"
    assert commands.analyze("python -m sglang.bench_one_batch --model m").kind == "latency"
    no_model = commands.analyze("python benchmarks/benchmark_latency.py", model="facebook/opt-125m")
    assert no_model.argv[-2:] == ["--model", "facebook/opt-125m"]


@pytest.mark.slow  # the console script tries to fetch the tasks' repositories (the network, or its wait)
def test_cli_validate_exit_code_and_listing(upstream_samples):
    proc = subprocess.run([sys.executable, "-m", "isobench_ray.cli", "tasks", "validate",
                           str(upstream_samples / "mappings" / "vllm_oh_mapping.json")], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1, proc.stderr
    assert "38 records, 13 usable tasks, 25 unusable: 19d98e0c," in proc.stdout
