"""`isobench mine` on the demo engine's history (tasks/demo/README.md: 02, 04, 06 and 07 are its performance
commits): find without a model, resume, describe and test against a scripted model on 127.0.0.1, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import commit, git
from scripted_llm import ScriptedLLM
from typer.testing import CliRunner

from isobench_ray import demo
from isobench_ray.cli import app
from isobench_ray.mine import LogEntry, MinedFiles, MineOptions, functions_at, mine, perf_signal, reject_by_diff, reject_early, touched_lines
from isobench_ray.mine_describe import leaked_line, parse_reply, tasks_yaml

PERF = ("free-block-list", "incremental-detokenization", "vectorized-sampler", "cached-block-hashes")


@pytest.fixture(scope="module")
def demo_repo(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The demo history in a folder of its own: (path, {slug: commit})."""
    path = tmp_path_factory.mktemp("demo") / "minillm"
    built = subprocess.run([sys.executable, str(demo.DEMO_DIR / "build_repo.py"), str(path)], check=True,
                           capture_output=True, text=True)
    return path, json.loads(built.stdout)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---------------------------------------------------------------- find

def test_find_keeps_exactly_the_performance_commits_of_the_demo(demo_repo, tmp_path):
    repo, commits = demo_repo
    assert mine(MineOptions(repo=repo, out=tmp_path)) == 9
    kept = {c["commit_hash"]: c for c in _lines(tmp_path / "candidates.jsonl")}
    rejected = {r["commit_hash"]: r for r in _lines(tmp_path / "rejected.jsonl")}
    assert set(kept) == {commits[slug] for slug in PERF}
    assert {rejected[commits[s]]["reason"] for s in ("initial", "benchmark-docs", "bump-version")} == {
        "root", "no_source_change", "version_bump"}
    assert rejected[commits["initial"]]["reason"] == "root"
    assert rejected[commits["benchmark-docs"]]["reason"] == "no_source_change"
    assert rejected[commits["bump-version"]]["reason"] == "version_bump"
    assert rejected[commits["unit-tests"]]["reason"] == "no_source_change"  # tests only
    assert rejected[commits["version-endpoint"]]["reason"] == "not_a_perf_commit"
    assert all(r["detail"] and r["commit_subject"] for r in rejected.values())
    assert all(c["functions_changed"] and c["perf_signal"] and c["diff_text"].startswith("diff --git") for c in kept.values())

    sampler = kept[commits["vectorized-sampler"]]
    assert sampler["functions_changed"] == ["minillm/sampler.py:Sampler.__call__", "minillm/sampler.py:Sampler._sample",
                                            "minillm/sampler.py:_apply_top_k_top_p", "minillm/sampler.py:_softmax"]
    assert sampler["commit_subject"] == "[Perf] Vectorize the sampler across the batch"
    assert sampler["parent_commit"] == commits["benchmark-docs"] and sampler["files_changed"] == ["minillm/sampler.py"]
    assert sampler["commit_date"] == "2024-06-09T16:00:00+00:00" and sampler["repo"] == "minillm" and sampler["pr_url"] is None
    assert sampler["stats"] == {"num_files": 1, "num_hunks": 1, "num_edited_lines": 71, "num_test_files": 0, "num_non_test_files": 1}
    assert {"[Perf]", "vectorize"} <= set(sampler["perf_signal"]) and sampler["description"] is None
    # a function the commit deletes is found in the parent's version of the file
    assert "minillm/core/block_manager.py:BlockAllocator._find_free_block" in kept[commits["free-block-list"]]["functions_changed"]


def test_resuming_looks_at_no_commit_twice(demo_repo, tmp_path):
    repo, _ = demo_repo
    assert mine(MineOptions(repo=repo, out=tmp_path, limit=4)) == 4
    with (tmp_path / "rejected.jsonl").open("a") as stream:
        stream.write('{"commit_hash": "cut sho')  # a line a stopped run left unfinished
    assert mine(MineOptions(repo=repo, out=tmp_path, limit=3)) == 3
    assert mine(MineOptions(repo=repo, out=tmp_path)) == 2
    assert mine(MineOptions(repo=repo, out=tmp_path)) == 0
    files = MinedFiles(tmp_path)
    hashes = [c.commit_hash for c in files.read_candidates()] + [r.commit_hash for r in files.read_rejections()]
    assert len(hashes) == len(set(hashes)) == 9
    assert files.summary() == {"kept": 4, "described": 0, "verified": 0, "no_source_change": 2, "not_a_perf_commit": 1, "root": 1, "version_bump": 1}


def test_since_until_and_paths_narrow_the_walk(demo_repo, tmp_path):
    repo, commits = demo_repo
    mine(MineOptions(repo=repo, out=tmp_path, since="2024-06-07", until="2024-06-09", paths=("minillm/sampler.py",)))
    kept = [c["commit_hash"] for c in _lines(tmp_path / "candidates.jsonl")]
    reasons = {r["commit_subject"][:20]: r["reason"] for r in _lines(tmp_path / "rejected.jsonl")}
    assert kept == [commits["vectorized-sampler"]]
    assert reasons == {"[Doc] Add benchmarks": "outside_paths", "[Perf] Detokenize in": "outside_paths"}


def test_a_github_remote_gives_the_pull_request_and_the_repository_name(tmp_path):
    repo = tmp_path / "r"
    commit(repo, "initial", {"pkg/core.py": "def work(n):\n    return sum(range(n))\n"})
    git(repo, "remote", "add", "origin", "git@github.com:someone/fastlib.git")
    human = commit(repo, "Speed up work() with the closed form (#1234)", {"pkg/core.py": "def work(n):\n    return n * (n - 1) // 2\n"})
    mine(MineOptions(repo=repo, out=tmp_path / "out"))
    (found,) = _lines(tmp_path / "out" / "candidates.jsonl")
    assert found["commit_hash"] == human and found["repo"] == "someone/fastlib"
    assert found["pr_url"] == "https://github.com/someone/fastlib/pull/1234"
    assert found["functions_changed"] == ["pkg/core.py:work"] and found["perf_signal"] == ["speed up"]


# ---------------------------------------------------------------- the pure parts

def _entry(subject: str, numstat=((3, 1, "pkg/a.py"),), parents=("p",)) -> LogEntry:
    return LogEntry("h" * 40, parents, "2025-01-31T10:00:00+00:00", subject + "\n\nbody", tuple(numstat))


def test_the_rules_the_log_alone_decides():
    assert reject_early(_entry("x", parents=("a", "b")), (), 2000)[0] == "merge"
    assert reject_early(_entry('Revert "[Perf] faster x"'), (), 2000)[0] == "revert"
    assert reject_early(_entry("[Perf] x"), ("vllm/*",), 2000)[0] == "outside_paths"
    assert reject_early(_entry("[Perf] x"), ("pkg/*",), 2000) is None
    assert reject_early(_entry("Release v1.2.3"), (), 2000)[0] == "version_bump"
    assert reject_early(_entry("[Perf] x", ((5, 0, "README.md"), (5, 0, ".github/workflows/ci.yml"))), (), 2000) == (
        "no_source_change", "only CI (1), docs (1)")
    assert reject_early(_entry("[Perf] x", ((1500, 600, "pkg/a.py"),)), (), 2000) == ("too_large", "2100 edited lines (over 2000)")


def test_scoring_says_which_words_matched():
    assert perf_signal("[Perf] Avoid a copy of the KV cache", "[Perf] Avoid a copy of the KV cache", "") == (
        14, ("[Perf]", "avoid copy", "cache"))
    assert perf_signal("Refactor the loader", "Refactor the loader\n\nThis reduces the scheduling overhead.", "") == (
        4, ("reduce overhead", "overhead"))
    assert perf_signal("Add an endpoint", "Add an endpoint", "+@functools.lru_cache\n") == (1, ("lru_cache",))
    assert reject_by_diff("+x = 1\n", 1, ("lru_cache",)) == ("not_a_perf_commit", "score 1 (keeps at 3): lru_cache")
    assert reject_by_diff('-__version__ = "0.1.0"\n+__version__ = "0.2.0"\n', 9, ("faster",))[0] == "version_bump"


def test_functions_are_found_from_the_hunks_lines():
    diff = ("diff --git a/m.py b/m.py\n--- a/m.py\n+++ b/m.py\n@@ -2,3 +2,4 @@ class A:\n"
            "     def f(self):\n-        return 1\n+        x = 2\n+        return x\n     y = 3\n")
    assert touched_lines(diff) == [("m.py", "m.py", {3, 4}, {3})]
    source = "class A:\n\n    def f(self):\n        x = 2\n        return x\n    y = 3\n\n\ndef g():\n    def inner():\n        pass\n"
    assert functions_at(source, {4, 6}) == {"A.f"} and functions_at(source, {11}) == {"g.inner"}
    assert functions_at("not python (", {1}) == set()
    guarded = ("try:\n    import x\nexcept ImportError:\n    def f():\n        pass\n"
               "if x:\n    class C:\n        async def g(self):\n            return 1\n")
    assert functions_at(guarded, {5, 9}) == {"f", "C.g"}  # defs under try, if and a class are found


def test_the_leak_check_and_the_reply_format():
    diff = "+        new_text = self.tokenizer.decode(ids)\n+        x = 1\n"
    assert leaked_line("Slow. It calls   new_text = self.tokenizer.decode(ids) each step.", diff) == (
        "new_text = self.tokenizer.decode(ids)")
    assert leaked_line("Streaming long outputs is slow: x = 1 everywhere.", diff) is None  # under 20 characters
    reply = "Sure.\n<description>\nStreaming is slow.\n```python\nshown()\n```\n</description>\n```python\nprint(1)\n```"
    assert parse_reply(reply) == ("Streaming is slow.\n```python\nshown()\n```", "print(1)\n")
    assert parse_reply("no parts") == (None, None)


# ---------------------------------------------------------------- describe and test, against a scripted model

SAMPLER_TEST = '''"""Times minillm's sampler on a batch of random rows, greedy and random rows mixed (ISO-Bench's convention)."""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

from minillm.sampler import Sampler
from minillm.sampling_params import SamplingParams


def setup():
    logits = np.random.default_rng(0).standard_normal((64, 1024)).astype(np.float32) * 3
    return logits, [SamplingParams(temperature=0.0 if i % 2 == 0 else 1.0) for i in range(64)]


def experiment(inputs):
    logits, params = inputs
    return Sampler(seed=0)(logits, params)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reference", action="store_true")
    parser.add_argument("--eqcheck", action="store_true")
    parser.add_argument("--prefix", default="")
    args = parser.parse_args()
    if any("SECRET" in name for name in os.environ):  # the harness must not hand its environment to a model's script
        sys.exit(4)
    inputs, times = setup(), []
    experiment(inputs)  # warm-up: the first call pays for imports and caches, not for the sampler
    for _ in range(20):
        start = time.perf_counter()
        result = experiment(inputs)
        times.append((time.perf_counter() - start) * 1000)
    path = f"{args.prefix}_reference.json"
    if args.reference:
        with open(path, "w") as f:
            json.dump(result, f)
    if args.eqcheck:
        with open(path) as f:
            if json.load(f) != result:
                sys.exit(1)
    print(json.dumps({"avg_ms": statistics.mean(times), "p50_ms": statistics.median(times),
                      "commit": os.environ["COMMIT_HASH"], "impl": os.environ["IMPL_TAG"]}))


main()
'''
FAILING_TEST = 'import sys\n\nprint("this workload needs a GPU", file=sys.stderr)\nsys.exit(3)\n'
LEAKED = "new_text = self.tokenizer.decode(token_ids[seq.prefix_offset :])"


def _scripted_reply(messages):
    """A good reply for the sampler (06) and the block hashes (07), a description quoting the fix for the
    detokenizer (04), a test that fails for the free list (02)."""
    prompt = messages[-1]["content"]
    if "Vectorize the sampler" in prompt or "Hash each block once" in prompt:
        return 200, ("Here is the task.\n<description>\nSampling a batch of 64 sequences, half of them greedy, takes longer "
                     "than the forward pass: the time goes to minillm/sampler.py.\n</description>\n\n"
                     f"```python\n{SAMPLER_TEST}```\n")
    if "Detokenize incrementally" in prompt:
        return 200, f"<description>\nStreaming is slow because each step runs {LEAKED} for every sequence.\n</description>\n" \
                    f"```python\n{SAMPLER_TEST}```"
    return 200, f"<description>\nServing slows down as the KV cache grows.\n</description>\n```python\n{FAILING_TEST}```"


def test_describe_and_test_keeps_what_passes_and_writes_script_tasks(demo_repo, tmp_path, monkeypatch):
    repo, commits = demo_repo
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # a local endpoint without a key gets the placeholder
    monkeypatch.setenv("ISOBENCH_TEST_SECRET", "not for the model's script")
    out = tmp_path / "out"
    mine(MineOptions(repo=repo, out=out))  # found first, described by a later run
    with ScriptedLLM(_scripted_reply) as llm:
        mine(MineOptions(repo=repo, out=out, model="openai/scripted", api_base=llm.url, test_timeout_s=120))
        assert len(llm.requests) == 4 and {r["model"] for r in llm.requests} == {"scripted"}
        prompt = llm.requests[0]["messages"][-1]["content"]
        assert "diff --git" in prompt and "--reference" in prompt and "avg_ms" in prompt
        mine(MineOptions(repo=repo, out=out, model="openai/scripted", api_base=llm.url))
        assert len(llm.requests) == 4  # nothing was left to describe

    kept = {c["commit_hash"]: c for c in _lines(out / "candidates.jsonl")}
    rejected = {r["commit_hash"]: r for r in _lines(out / "rejected.jsonl")}
    assert set(kept) == {commits["vectorized-sampler"], commits["cached-block-hashes"]}
    assert all(c["test_script"] == SAMPLER_TEST and c["description"].startswith("Sampling a batch") for c in kept.values())
    assert rejected[commits["incremental-detokenization"]]["reason"] == "description_leaks_fix"
    assert LEAKED in rejected[commits["incremental-detokenization"]]["detail"]
    failing = rejected[commits["free-block-list"]]
    assert failing["reason"] == "test_fails_on_parent" and "exit 3" in failing["detail"] and "needs a GPU" in failing["detail"]

    doc = yaml.safe_load((out / "tasks.yaml").read_text())
    assert doc["suite"] == "mined" and doc["repos"] == {"minillm": {"url": str(repo.resolve()), "engine": "generic"}}
    sampler = commits["vectorized-sampler"]
    task = next(t for t in doc["tasks"] if t["human_commit"] == sampler)
    assert len(doc["tasks"]) == 2 and task["id"] == f"minillm-{sampler[:12]}" and task["repo"] == "minillm"
    assert task["parent_commit"] == commits["benchmark-docs"] and task["commit_date"] == "2024-06-09T16:00:00+00:00"
    assert task["description"].startswith("Sampling a batch") and task["description"].endswith("\n")
    assert task["benchmark"] == {"kind": "script", "scripts": [{"name": f"test_{sampler[:12]}.py", "text": SAMPLER_TEST}]}

    # the file is a task file the harness runs as it is: it loads, and its sampler task is measured in every arm
    from conftest import QUICK_BENCH, settings_under

    from isobench_ray.engines.scripts import METRIC
    from isobench_ray.sandbox import make_sandboxes
    from isobench_ray.schema import Attempt, BenchSlot, NoopSpec
    from isobench_ray.stages.benchmark import ThreeWayBenchmark
    from isobench_ray.tasks import load_tasks

    loaded = load_tasks(out / "tasks.yaml")
    assert not loaded.errors and [t.benchmark.kind for t in loaded.tasks] == ["script", "script"], loaded.errors
    mined = next(t for t in loaded.tasks if t.human_commit == sampler)
    settings = settings_under(tmp_path / "bench", **QUICK_BENCH)
    measured, _ = ThreeWayBenchmark(BenchSlot(name="cpu"), settings, sandboxes=make_sandboxes(settings)).run(
        Attempt.make(mined, NoopSpec(name="noop"), 0, "x"), mined, "")
    assert all(a.failure_cause is None and a.samples(METRIC) for a in measured.arms), [a.detail for a in measured.arms]


def test_tasks_yaml_keeps_text_as_blocks():
    from isobench_ray.mine import Candidate, Stats

    cand = Candidate(commit_hash="a" * 40, parent_commit="b" * 40, commit_date="2025-01-31T10:00:00+00:00", commit_subject="s",
                     commit_message="s", files_changed=("x.py",), functions_changed=(), diff_text="", pr_url=None,
                     repo="owner/engine", perf_signal=("faster",), perf_score=6, description="Slow.\nVery.\n",
                     stats=Stats(num_files=1, num_hunks=1, num_edited_lines=2, num_test_files=0, num_non_test_files=1),
                     test_script="print(1)\nprint(2)\n")
    text = tasks_yaml([cand], "owner/engine", "https://github.com/owner/engine")
    assert "tasks:\n  - id: engine-aaaaaaaaaaaa\n" in text and "    description: |\n      Slow.\n      Very.\n" in text
    assert "          text: |\n            print(1)\n            print(2)\n" in text
    assert yaml.safe_load(text)["tasks"][0]["id"] == "engine-aaaaaaaaaaaa"
    assert "python" not in yaml.safe_load(text)["repos"]["engine"]  # the harness's interpreter: nothing to say
    # the engine's own environment (`--python`): every arm of a run of the file runs the tests with it
    engine = yaml.safe_load(tasks_yaml([cand], "owner/engine", "https://github.com/owner/engine", "/opt/engine/bin/python"))
    assert engine["repos"]["engine"]["python"] == "/opt/engine/bin/python"
    from isobench_ray.mine_describe import engine_python
    assert engine_python(sys.executable) is None and engine_python("/opt/engine/bin/python") == "/opt/engine/bin/python"


# ---------------------------------------------------------------- the command

def test_the_command_mines_the_demo_and_prints_the_summary(demo_repo, tmp_path):
    repo, _ = demo_repo
    result = CliRunner().invoke(app, ["mine", str(repo), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "9 commits looked at in this run" in result.output
    rows = {line.split()[0]: line.split()[1] for line in result.output.splitlines() if line.strip() and line.split()[0] in (
        "kept", "rejected", "version_bump", "no_source_change", "not_a_perf_commit", "root")}
    assert rows == {"kept": "4", "rejected": "5", "version_bump": "1", "no_source_change": "2", "not_a_perf_commit": "1", "root": "1"}
    assert (tmp_path / "out" / "candidates.jsonl").exists() and (tmp_path / "out" / "rejected.jsonl").exists()
    assert not (tmp_path / "out" / "tasks.yaml").exists()  # no model, no tasks

    again = CliRunner().invoke(app, ["mine", str(repo), "--out", str(tmp_path / "out")])
    assert again.exit_code == 0 and "0 commits looked at in this run" in again.output
    not_a_repo = CliRunner().invoke(app, ["mine", str(tmp_path / "out"), "--out", str(tmp_path / "x")])
    assert not_a_repo.exit_code == 2 and "not a git repository" in not_a_repo.output


def test_a_model_that_does_not_answer_stops_the_run_and_leaves_the_candidates_pending(demo_repo, tmp_path, monkeypatch):
    repo, _ = demo_repo
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    with ScriptedLLM(lambda messages: (401, "invalid key")) as llm:
        result = CliRunner().invoke(app, ["mine", str(repo), "--out", str(tmp_path), "--model", "openai/scripted",
                                          "--api-base", llm.url])
    assert result.exit_code == 1 and "openai/scripted did not answer: AuthenticationError" in result.output
    assert "stay in" in result.output and len(llm.requests) == 1
    files = MinedFiles(tmp_path)
    assert files.summary()["kept"] == 4 and all(c.description is None for c in files.read_candidates())


# ---------------------------------------------------------------- verify

@pytest.mark.slow
def test_verify_keeps_the_commit_whose_test_measures_it_faster(demo_repo, tmp_path):
    """`--verify` measures each described candidate through `isobench run` (the commit against its parent, the
    A/A arm beside them): the sampler commit's test shows its 2.4x beyond the noise (kept, how it cleared said);
    the block-hash commit got the same sampler test, which does not exercise its change: rejected, with the
    commit/parent interval in words (no_gain, or too_noisy where this host's noise hides a small difference).
    The task file left holds only the verified task, and `isobench tasks validate` passes it."""
    repo, commits = demo_repo
    out = tmp_path / "out"
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "RAY_USAGE_STATS_ENABLED": "0",
           "ISOBENCH_CACHE_DIR": str(tmp_path / "cache"), "ISOBENCH_WORK_DIR": str(tmp_path / "work")}
    env.pop("OPENAI_API_KEY", None)
    with ScriptedLLM(_scripted_reply) as llm:
        cmd = [sys.executable, "-m", "isobench_ray.cli", "mine", str(repo), "--out", str(out), "--model",
               "openai/scripted", "--api-base", llm.url, "--test-timeout", "120", "--verify", "--num-cpus", "2",
               "--rounds", "3", "--max-rounds", "8"]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "(1 described, 1 verified)" in proc.stdout, proc.stdout

    kept = {c["commit_hash"]: c for c in _lines(out / "candidates.jsonl")}
    rejected = {r["commit_hash"]: r for r in _lines(out / "rejected.jsonl")}
    sampler, hashes = commits["vectorized-sampler"], commits["cached-block-hashes"]
    assert set(kept) == {sampler} and kept[sampler]["verified"].startswith("beats: commit/parent"), kept
    assert rejected[hashes]["reason"] in ("no_gain", "too_noisy") and "commit/parent" in rejected[hashes]["detail"]
    assert (out / "verify" / "report.md").exists()  # the measurements behind each decision, to read
    doc = yaml.safe_load((out / "tasks.yaml").read_text())
    assert [t["human_commit"] for t in doc["tasks"]] == [sampler]
    checked = CliRunner().invoke(app, ["tasks", "validate", str(out / "tasks.yaml")])
    assert checked.exit_code == 0, checked.output

    again = subprocess.run(cmd[:7] + ["--verify"], env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "0 commits looked at" in again.stdout  # nothing left to measure: no run


def test_verification_names_why_a_measured_commit_is_rejected():
    """The pure decision on a verify run's record: an arm that failed, an output that changed, a gain inside
    the band, no A/A arm."""
    from isobench_ray.mine_verify import verification
    from isobench_ray.schema import ArmResult, Attempt, AttemptRecord, FailureCause, Measurements, Run, Status

    def record(human: list[float], baseline2: list[float] | None = (10.0, 10.2, 9.9, 10.1), failed: str | None = None,
               equivalent: bool | None = None) -> AttemptRecord:
        values = {"baseline": [10.0, 10.1, 9.9, 10.0], "human": human, "agent": [10.0, 10.1, 9.9, 10.0],
                  **({"baseline2": list(baseline2)} if baseline2 else {})}
        arms = [ArmResult(arm=arm, commit="c", command="x", failure_cause=FailureCause.bench_error if arm == failed else None,
                          equivalent=equivalent if arm == "human" else None,
                          runs=[Run(arm=arm, round=i, metrics={"script_ms": v}) for i, v in enumerate(vs)])
                for arm, vs in values.items()]
        attempt = Attempt(task_id="t", agent="noop", rollout=0, id="t.noop.0.x")
        return AttemptRecord(attempt=attempt, status=Status.success, measurements=Measurements(
            attempt_id=attempt.id, slot="cpu", primary_metric="script_ms", higher_is_better=False, arms=arms))

    assert verification(record([5.0, 5.1, 4.9, 5.0]), 5.0)[0] is None  # twice as fast, the A/A tight
    assert verification(record([10.0, 10.1, 9.9, 10.05]), 5.0)[0] == "no_gain"
    assert verification(record([5.0, 5.1, 4.9, 5.0], baseline2=None), 5.0)[0] == "too_noisy"
    assert verification(record([5.0, 5.1, 4.9, 5.0], failed="baseline"), 5.0)[0] == "test_fails_on_parent"
    assert verification(record([5.0, 5.1, 4.9, 5.0], failed="human"), 5.0)[0] == "test_fails_on_commit"
    assert verification(record([5.0, 5.1, 4.9, 5.0], equivalent=False), 5.0)[0] == "not_equivalent"
    assert verification(None, 5.0)[0] == "not_measured"


def test_the_mined_folder_is_pushed_to_the_hub_as_a_dataset(demo_repo, tmp_path, monkeypatch):
    """`--push-to-hub`: candidates.jsonl (the viewer's split), rejected.jsonl and a card in one commit to a
    stand-in of the hub's HTTP API on 127.0.0.1."""
    import huggingface_hub.constants
    from conftest import serve
    from test_report import _FakeHub

    repo, _ = demo_repo
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # the Makefile sets it; this test only
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    _FakeHub.calls, _FakeHub.files = [], {}
    with serve(_FakeHub) as server:
        # the hub client reads HF_ENDPOINT when it is imported: the value it took is replaced
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
        result = CliRunner().invoke(app, ["mine", str(repo), "--out", str(tmp_path / "out"), "--push-to-hub", "me/mined"])
    assert result.exit_code == 0, result.output
    assert "pushed:" in result.output and set(_FakeHub.files) == {"README.md", "candidates.jsonl", "rejected.jsonl"}
    assert _FakeHub.files["candidates.jsonl"] == (tmp_path / "out" / "candidates.jsonl").read_bytes()
    card = huggingface_hub.DatasetCard(_FakeHub.files["README.md"].decode())
    assert card.data.configs[0]["data_files"][0]["path"] == "candidates.jsonl" and "4 performance commits kept" in card.text
