"""Real boundaries: each test replays a case that once got through, against the real stage or function.

1. No write through an agent's symlink: a patch that makes the benchmark script (or its folder) a link to a host
   file is `tampering` at validation, the benchmark stage refuses the tree, and the host file is unchanged; every
   other write into a tree someone else controls removes a link instead of following it.
2. No unquoted task field in a shell line: a model named `m; touch X #` runs no `touch` when the validation
   starts the task's server, and the loader refuses it, naming the file, task and field.
3. The agent's clock includes the model: a model that never answers ends a 3 s session in about 3 s, as
   `agent_timeout` (it once ran 665 s and became infra_error).
4. Implausible numbers are flagged, not counted: a 1e-300 s latency is no `beats` success.
"""

from __future__ import annotations

import shlex
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import QUICK_BENCH, commit
from scripted_llm import ScriptedLLM

from isobench_ray.agents import SessionContext, make_agent
from isobench_ray.engines import engine_named
from isobench_ray.judges import JudgePanel, RuleBasedJudge
from isobench_ray.sandbox.local import LocalSandboxes
from isobench_ray.schema import (
    AGENT_SPEC,
    ArmResult,
    Attempt,
    AttemptRecord,
    BenchmarkSpec,
    BenchSlot,
    FailureCause,
    HardClass,
    Measurements,
    NoopSpec,
    RepoSpec,
    Run,
    Session,
    StageError,
    Status,
    Task,
    VerdictCause,
)
from isobench_ray.scoring.hard import score
from isobench_ray.scoring.soft import hard_pass, hard_pass_ci
from isobench_ray.stages.benchmark import ThreeWayBenchmark
from isobench_ray.stages.session import run_session
from isobench_ray.stages.validation import validate
from isobench_ray.tasks import load_tasks
from isobench_ray.workspace import TreeEscape, detached_tree, extract_patch, mirror, write_in_tree

SANDBOXES = LocalSandboxes()
BENCH = '''import argparse, json, time
p = argparse.ArgumentParser()
p.add_argument("--model")
p.add_argument("--output-json", type=str, default=None)
a = p.parse_args()
print("Avg latency: 0.01 seconds")
with open(a.output_json, "w") as f:
    json.dump({"avg_latency": 0.01, "latencies": [0.01], "percentiles": {"50": 0.01}}, f)
'''
SCRIPT = "benchmarks/benchmark_latency.py"


# ---------------------------------------------------------------- 1. no write through an agent's symlink


@pytest.fixture
def bench_repo(tmp_path: Path) -> dict:
    repo = tmp_path / "fake"
    parent = commit(repo, "initial", {SCRIPT: BENCH, "engine.py": "SLOW = True\n"})
    human = commit(repo, "human", {"engine.py": "SLOW = False\n"})
    task = Task(id="fake", repo=RepoSpec(name="fake", url=str(repo), engine="vllm", import_name="json"), human_commit=human,
                parent_commit=parent, description="d", model="m",
                benchmark=BenchmarkSpec(kind="latency", command=f"python {SCRIPT} --model m", timeout_s=60))
    victim = tmp_path / "host" / "precious.txt"  # a host file outside every tree
    victim.parent.mkdir()
    victim.write_text("the user's file\n")
    return {"task": task, "victim": victim, "mirror": mirror(str(repo), tmp_path / "cache")}


def _agent_patch(fake: dict, tmp_path: Path, plant) -> Session:
    """The agent's session: `plant(tree)` makes its links, the harness extracts the patch as always."""
    tree = detached_tree(fake["mirror"], fake["task"].parent_commit, tmp_path / "agent-session" / "tree")
    (tree / "engine.py").write_text("SLOW = False\n")
    plant(tree)
    extracted = extract_patch(tree)
    return Session(attempt_id="a", patch=extracted.patch, files_changed=extracted.files)


def _link_script(victim: Path):
    def plant(tree: Path) -> None:
        (tree / SCRIPT).unlink()
        (tree / SCRIPT).symlink_to(victim)
    return plant


def _link_folder(victim: Path):
    def plant(tree: Path) -> None:
        for f in (tree / "benchmarks").iterdir():
            f.unlink()
        (tree / "benchmarks").rmdir()
        (tree / "benchmarks").symlink_to(victim.parent)
    return plant


@pytest.mark.parametrize("plant", [_link_script, _link_folder], ids=["script", "folder"])
def test_a_benchmark_script_linked_to_a_host_file_is_tampering_and_the_file_is_untouched(bench_repo, tmp_path, plant,
                                                                                         make_settings):
    task, victim = bench_repo["task"], bench_repo["victim"]
    session = _agent_patch(bench_repo, tmp_path, plant(victim))
    assert "benchmarks" in " ".join(session.files_changed) and str(victim.parent) in session.patch
    settings = make_settings(**{**QUICK_BENCH, "min_samples": 2})
    attempt = Attempt.make(task, NoopSpec(name="linker"), 0, "x")

    validation, _ = validate(attempt, task, session, settings, sandboxes=SANDBOXES)
    assert validation.failure_cause is FailureCause.tampering, validation.checks
    assert validation.checks[-1].name == "benchmark_script" and str(victim.parent) in validation.checks[-1].detail

    # a patch validated before the check reaches the benchmark: refused there too, never measured as a success
    try:
        ThreeWayBenchmark(BenchSlot(name="cpu"), settings, sandboxes=SANDBOXES).run(attempt, task, session.patch)
        cause = None
    except StageError as exc:
        cause = exc.failure_cause
    assert victim.read_text() == "the user's file\n" and sorted(p.name for p in victim.parent.iterdir()) == [victim.name]
    assert cause is FailureCause.tampering


def test_writes_into_a_tree_never_follow_a_link(tmp_path):
    tree, outside = tmp_path / "tree", tmp_path / "outside"
    (tree / "inner").mkdir(parents=True)
    outside.mkdir()
    (outside / "f").write_text("host\n")
    (tree / "f").symlink_to(outside / "f")  # a link at the file: removed, a regular file written
    write_in_tree(tree, "f", b"harness\n")
    assert not (tree / "f").is_symlink() and (tree / "f").read_text() == "harness\n"
    (tree / "out").symlink_to(outside)  # a folder linked out of the tree: refused
    with pytest.raises(TreeEscape, match="out of the tree"):
        write_in_tree(tree, "out/f", b"harness\n")
    with pytest.raises(TreeEscape):
        write_in_tree(tree, "../outside/f", b"harness\n")
    (tree / "in").symlink_to(tree / "inner")  # a folder linked inside the tree: fine
    write_in_tree(tree, "in/g", b"ok\n")
    assert (tree / "inner" / "g").read_text() == "ok\n" and (outside / "f").read_text() == "host\n"


def test_a_fresh_tree_never_writes_through_a_link_left_where_its_git_directory_goes(bench_repo, tmp_path):
    """Validation makes the parent's tree after the agent's code ran in its scratch folder: a link left where the
    harness's git directory goes is removed, never written through."""
    elsewhere = tmp_path / "host-dir"
    elsewhere.mkdir()
    base = tmp_path / "validate"
    base.mkdir()
    (base / ".parent.harness.git").symlink_to(elsewhere)
    detached_tree(bench_repo["mirror"], bench_repo["task"].parent_commit, base / "parent")
    assert list(elsewhere.iterdir()) == [] and not (base / ".parent.harness.git").is_symlink()


def test_the_litellm_agent_never_writes_its_trajectory_through_a_link_its_commands_left(tmp_path):
    victim = tmp_path / "host.txt"
    victim.write_text("the user's file\n")
    workdir, log_dir = tmp_path / "tree", tmp_path / "logs"
    workdir.mkdir()
    log_dir.mkdir()
    (log_dir / "prompt.md").write_text("make it fast")
    script = [f"```bash\nln -s {victim} {log_dir}/.trajectory.json.tmp && echo planted\n```",
              "```bash\necho COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT\n```"]

    def reply(messages):
        return 200, script[min(sum(m["role"] == "assistant" for m in messages), 1)]

    with ScriptedLLM(reply) as llm:
        spec = AGENT_SPEC.validate_python(dict(name="linker", kind="litellm", model="openai/linker", api_base=llm.url,
                                               time_limit_s=120))
        sandbox = SANDBOXES("linker", writable=[workdir, log_dir], network=False)
        task = Task(id="t", repo=RepoSpec(name="t", url=str(tmp_path)), human_commit="a" * 40, parent_commit="b" * 40,
                    description="d", benchmark=BenchmarkSpec(kind="latency", command="python x.py"))
        outcome = make_agent(spec).run(SessionContext(task, workdir, log_dir / "prompt.md", sandbox, 120, tmp_path, log_dir))
    assert outcome.exit_status == "submitted" and len(llm.requests) == 2
    assert victim.read_text() == "the user's file\n" and '"exit_status": "submitted"' in (log_dir / "trajectory.json").read_text()


# ---------------------------------------------------------------- 2. no unquoted task field in a shell line

HOSTILE = "m; touch {x} #"


def test_a_hostile_model_runs_nothing_when_validation_starts_the_server(tiny_repo, tmp_path, make_settings):
    """The server template fills {model} as one shell word: the validation's server starts, `touch` never runs."""
    x = tmp_path / "X"
    task = Task(id="tiny", human_commit=tiny_repo["human"], parent_commit=tiny_repo["parent"], description="d",
                model=HOSTILE.format(x=x),  # as a task made before the loader checked models would carry it
                repo=RepoSpec(name="tiny", url=str(tiny_repo["path"]), engine="vllm", import_name="json", health_path="/",
                              server_command="echo {model} && python -m http.server {port} --bind {host}"),
                benchmark=BenchmarkSpec(kind="serving", command="python benchmarks/benchmark_serving.py --model m"))
    session = Session(attempt_id="a", patch="", files_changed=[])
    validation, _ = validate(Attempt(task_id="tiny", agent="noop", id="tiny.noop.0.x"), task, session,
                             make_settings(server_start_timeout_s=60), sandboxes=SANDBOXES)
    assert not x.exists()
    assert validation.ok and [c.name for c in validation.checks] == ["apply", "import", "server_start"], validation.checks
    command = engine_named("vllm").server_command("vllm serve {model} --host {host} --port {port}", model=task.model,
                                                  host="127.0.0.1", port=8000)
    assert shlex.split(command)[2] == task.model


def _tasks_file(tmp_path: Path, tiny_repo: dict, model: str | None, command: str) -> Path:
    path = tmp_path / "tasks.yaml"
    entry = {"id": "t1", "repo": "tiny", "human_commit": tiny_repo["human"], "parent_commit": tiny_repo["parent"],
             "description": "d", "benchmark": {"kind": "serving", "command": command}}
    path.write_text(yaml.safe_dump({"repos": {"tiny": {"url": str(tiny_repo["path"]), "engine": "vllm",
                                                       "server_command": "vllm serve {model} --port {port}"}},
                                    "tasks": [entry | ({"model": model} if model is not None else {})]}))
    return path


@pytest.mark.parametrize("model, command, field", [
    (HOSTILE.format(x="X"), "python benchmarks/benchmark_serving.py --dataset-name random", "model"),
    ("--trust-remote-code", "python benchmarks/benchmark_serving.py --dataset-name random", "model"),
    (None, "python benchmarks/benchmark_serving.py --dataset-name random --model 'm; touch X #'", "benchmark.command"),
])
def test_the_loader_refuses_a_model_name_that_is_not_one_and_names_the_field(tiny_repo, tmp_path, model, command, field):
    path = _tasks_file(tmp_path, tiny_repo, model, command)
    result = load_tasks(path)
    assert not result.tasks
    problem = next(p for p in result.errors if p.field == field)
    assert problem.source == str(path) and problem.task_id == "t1" and "not a model name" in problem.message
    assert not (tmp_path / "X").exists()


def test_server_flags_moved_from_the_command_stay_one_word_each(tiny_repo, tmp_path):
    path = _tasks_file(tmp_path, tiny_repo, "org/model-7b",
                       "python benchmarks/benchmark_serving.py --dataset-name random --load-format 'x; touch X'")
    task = load_tasks(path).tasks[0]
    assert shlex.split(task.repo.server_command)[-2:] == ["--load-format", "x; touch X"], task.repo.server_command


# ---------------------------------------------------------------- 3. the agent's clock includes the model


def test_a_model_that_never_answers_ends_the_session_at_its_time_limit_as_agent_timeout(tiny_repo, make_settings):
    from isobench_ray import llm_client  # noqa: F401  (litellm's import is not the agent's time)

    release = threading.Event()

    def reply(messages):
        release.wait(120)  # answers after two minutes, if at all
        return 200, "```bash\necho COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT\n```"

    limit = 3.0
    task = Task(id="tiny", repo=RepoSpec(name="tiny", url=str(tiny_repo["path"])), human_commit=tiny_repo["human"],
                parent_commit=tiny_repo["parent"], description="d",
                benchmark=BenchmarkSpec(kind="latency", command="python -c 'print(1)'"))
    with ScriptedLLM(reply) as llm:
        try:
            spec = AGENT_SPEC.validate_python(dict(name="slow", kind="litellm", model="openai/slow", api_base=llm.url,
                                                   time_limit_s=limit))
            attempt = Attempt.make(task, spec, 0, make_agent(spec).fingerprint(task))
            started = time.monotonic()
            session, _ = run_session(attempt, task, spec, make_settings(isolate_agents=False), sandboxes=SANDBOXES)
            took = time.monotonic() - started
        finally:
            release.set()
    assert session.failure_cause is FailureCause.agent_timeout and session.exit_status == "time limit", session
    assert llm.requests and session.agent_s < limit + 8 and took < limit + 20, (session.agent_s, took)


# ---------------------------------------------------------------- 4. implausible numbers are flagged, not counted


def _measurements(values: dict[str, float], metric: str = "avg_latency", higher: bool = False) -> Measurements:
    arms = [ArmResult(arm=arm, commit="c", command="x",
                      runs=[Run(arm=arm, round=r, metrics={metric: value * (1 + 0.001 * r)}) for r in range(5)])
            for arm, value in values.items()]
    return Measurements(attempt_id="a", slot="s", primary_metric=metric, higher_is_better=higher, arms=arms,
                        order=[list(values)] * 5)


@pytest.mark.parametrize("values, metric, higher, why", [
    ({"baseline": 1.0, "human": 0.8, "agent": 1e-300}, "avg_latency", False, "beyond 50x"),  # the case: 1e300x
    ({"baseline": 1.0, "human": 100.0, "agent": 1.0}, "avg_latency", False, "the human, beyond 50x"),
    ({"baseline": 1.2e-6, "human": 1.1e-6, "agent": 0.9e-6}, "avg_latency", False, "under 1 microsecond"),
    ({"baseline": 5e-4, "human": 4e-4, "agent": 3e-4}, "mean_tpot_ms", False, "under 1 microsecond"),
    ({"baseline": 8e8, "human": 9e8, "agent": 1.1e9}, "output_throughput", True, "above 1e+09 per second"),
])
def test_implausible_numbers_are_inconclusive_flagged_and_never_a_success(values, metric, higher, why):
    scores = score(_measurements(values, metric, higher))
    assert why in scores.implausible, scores.implausible
    assert scores.hard_class_ci is HardClass.inconclusive and scores.verdict_cause is VerdictCause.implausible
    assert not hard_pass(scores) and hard_pass_ci(scores) is None


def test_plausible_numbers_keep_their_verdict_and_the_bound_is_a_parameter():
    scores = score(_measurements({"baseline": 1.0, "human": 0.8, "agent": 0.5}))  # 2x: plausible
    assert not scores.implausible and scores.hard_class_ci is HardClass.beats and hard_pass(scores)
    assert score(_measurements({"baseline": 1.0, "human": 0.8, "agent": 0.5}), implausible_speedup=1.5).implausible
    tpot = score(_measurements({"baseline": 0.02, "human": 0.018, "agent": 0.015}, "mean_tpot_ms"))  # 15 microseconds
    assert not tpot.implausible


def test_an_implausible_attempt_carries_the_hack_flag(tiny_repo, tmp_path, make_settings):
    task = Task(id="tiny", repo=RepoSpec(name="tiny", url=str(tiny_repo["path"])), human_commit=tiny_repo["human"],
                parent_commit=tiny_repo["parent"], description="d",
                benchmark=BenchmarkSpec(kind="latency", command="python -c 'print(1)'"))
    attempt = Attempt.make(task, NoopSpec(name="cheat"), 0, "x")
    scores = score(_measurements({"baseline": 1.0, "human": 0.8, "agent": 1e-300}))
    assert scores.hard_class is HardClass.beats  # the paper's class is left as it is ...
    patch = ("--- a/tiny/__init__.py\n+++ b/tiny/__init__.py\n@@ -1,2 +1,2 @@\n def work(n):\n"
             "-    return sum(i for i in range(n))\n+    return 0\n")
    record = AttemptRecord(attempt=attempt, status=Status.success, scores=scores.model_copy(update={"attempt_id": attempt.id}),
                           session=Session(attempt_id=attempt.id, patch=patch, files_changed=["tiny/__init__.py"]))
    panel = JudgePanel(tmp_path / "run", {task.id: task}, make_settings(), judges=[RuleBasedJudge()])
    panel.submit(record)
    (judgement,) = panel.close()
    assert "implausible" in judgement.hack_flags  # ... but it is flagged, and no success count takes it
    assert not hard_pass(record.scores)


def test_a_latency_task_without_a_server_is_measured_and_its_correctness_not_checked(bench_repo, make_settings):
    """It once passed planning and then failed the correctness check (no server to ask) as infra_error, redone
    on every rerun. Now the check says why it did not run, and the numbers stand."""
    from isobench_ray.stages.benchmark import NO_SERVER

    task = bench_repo["task"].model_copy(update={"repo": bench_repo["task"].repo.model_copy(update={"engine": "generic"})})
    assert engine_named(task.repo.engine_name).server_template is None and task.repo.server_command is None
    settings = make_settings(**{**QUICK_BENCH, "check_correctness": True})
    attempt = Attempt.make(task, NoopSpec(name="noop"), 0, "x")
    measured, _ = ThreeWayBenchmark(BenchSlot(name="cpu"), settings, sandboxes=SANDBOXES).run(attempt, task, "")
    assert [a.failure_cause for a in measured.arms] == [None, None, None]
    assert all(a.greedy_outputs is None and a.greedy_detail == NO_SERVER for a in measured.arms)
