"""Real git: detached trees hide history, patches are extracted by the harness, agents change trees."""

import json

import git
import pytest

from isobench_ray.agents import AgentConfigError, make_agent, parse_agents
from isobench_ray.sandbox.local import LocalSandboxes
from isobench_ray.schema import AGENT_SPEC, Attempt, BenchmarkSpec, FailureCause, RepoSpec, Task
from isobench_ray.stages.session import run_session
from isobench_ray.workspace import PatchApplyError, apply_patch, detached_tree, diff_between, extract_patch, mirror

SANDBOXES = LocalSandboxes()


def _task(repo: dict) -> Task:
    return Task(id="tiny-sum", repo=RepoSpec(name="tiny", url=str(repo["path"])), human_commit=repo["human"],
                parent_commit=repo["parent"], description="work() is slow for large n",
                benchmark=BenchmarkSpec(kind="latency", command="python -c 'print(1)'"))


def test_detached_tree_cannot_see_the_human_commit(tiny_repo, tmp_path):
    m = mirror(str(tiny_repo["path"]), tmp_path / "cache")
    tree = detached_tree(m, tiny_repo["parent"], tmp_path / "tree")
    repo = git.Repo(tree)
    assert len(list(repo.iter_commits())) == 1
    all_objects = repo.git.rev_list("--all", "--objects")
    assert tiny_repo["human"] not in all_objects and tiny_repo["parent"] not in all_objects
    assert "sum(i for i" in (tree / "tiny" / "__init__.py").read_text()


def test_extract_patch_sees_new_and_changed_files_but_not_scratch(tiny_repo, tmp_path):
    tree = detached_tree(mirror(str(tiny_repo["path"]), tmp_path / "cache"), tiny_repo["parent"], tmp_path / "tree")
    (tree / "tiny" / "__init__.py").write_text("def work(n):\n    return 0\n")
    (tree / "tiny" / "fast.py").write_text("X = 1\n")
    (tree / ".bench_scratch").mkdir()
    (tree / ".bench_scratch" / "timing.py").write_text("print('t')\n")
    extracted = extract_patch(tree)
    patch, files = extracted.patch, extracted.files
    assert sorted(files) == ["tiny/__init__.py", "tiny/fast.py"]
    assert ".bench_scratch" not in patch
    fresh = detached_tree(mirror(str(tiny_repo["path"]), tmp_path / "cache"), tiny_repo["parent"], tmp_path / "fresh")
    assert apply_patch(SANDBOXES("t", writable=[tmp_path], network=False), fresh, patch, tmp_path / "p.diff") == "git apply"
    assert (fresh / "tiny" / "fast.py").exists()


def test_patch_that_does_not_apply_says_why(tiny_repo, tmp_path):
    tree = detached_tree(mirror(str(tiny_repo["path"]), tmp_path / "cache"), tiny_repo["parent"], tmp_path / "tree")
    bad = "--- a/tiny/__init__.py\n+++ b/tiny/__init__.py\n@@ -1,2 +1,2 @@\n def nothing_like_this():\n-    pass\n+    return 1\n"
    with pytest.raises(PatchApplyError, match="patch failed|does not apply|corrupt"):
        apply_patch(SANDBOXES("t", writable=[tmp_path], network=False), tree, bad, tmp_path / "p.diff")


# noop's empty patch is not a failure: it is the A/A control and gets benchmarked
@pytest.mark.parametrize("kind, expect_patch, cause", [("human", True, None), ("noop", False, None)])
def test_session_with_builtin_agents(tiny_repo, tmp_path, kind, expect_patch, cause, make_settings):
    task = _task(tiny_repo)
    spec = AGENT_SPEC.validate_python(dict(name=kind, kind=kind))
    attempt = Attempt.make(task, spec, 0, make_agent(spec).fingerprint(task))
    session, logs = run_session(attempt, task, spec, make_settings(), sandboxes=SANDBOXES)
    assert session.failure_cause == cause
    assert bool(session.patch) == expect_patch
    if expect_patch:
        human = diff_between(mirror(str(tiny_repo["path"]), tmp_path / "cache"), tiny_repo["parent"], tiny_repo["human"])
        def body(p):  # index lines differ: the tree is a new repository
            return p[p.index("--- a/"):].strip()

        assert body(session.patch) == body(human)
        assert session.files_changed == ["tiny/__init__.py"]
    assert "work() is slow" in logs["prompt.md"]
    assert not (tmp_path / "work" / attempt.id).exists()  # scratch removed


def test_replay_predictions_and_a_patch_that_does_not_apply(tiny_repo, tmp_path, make_settings):
    task = _task(tiny_repo)
    good = diff_between(mirror(str(tiny_repo["path"]), tmp_path / "cache"), tiny_repo["parent"], tiny_repo["human"])
    preds = tmp_path / "preds.jsonl"
    preds.write_text("\n".join(json.dumps(r) for r in [
        {"instance_id": "tiny-sum", "model_name_or_path": "good", "model_patch": good},
        {"instance_id": "tiny-sum", "model_name_or_path": "stale", "model_patch": good.replace("sum(i for i in range(n))", "something_else(n)")},
        {"instance_id": "other-task", "model_name_or_path": "elsewhere", "model_patch": good},
    ]))
    specs = parse_agents(f"replay:{preds}")
    assert [s.name for s in specs] == ["good", "stale", "elsewhere"]
    agents = [make_agent(s) for s in specs]
    assert [a.covers(task) for a in agents] == [True, True, False]
    results = {}
    for agent in agents[:2]:
        attempt = Attempt.make(task, agent.spec, 0, agent.fingerprint(task))
        results[agent.spec.name] = run_session(attempt, task, agent.spec, make_settings(), sandboxes=SANDBOXES)[0]
    assert results["good"].failure_cause is None and "n * (n - 1) // 2" in results["good"].patch
    assert results["stale"].failure_cause == FailureCause.patch_does_not_apply


def test_command_agent_that_changes_nothing_has_no_patch(tiny_repo, tmp_path, make_settings):
    task = _task(tiny_repo)
    spec = AGENT_SPEC.validate_python(dict(name="lazy", kind="command", command="true"))
    attempt = Attempt.make(task, spec, 0, make_agent(spec).fingerprint(task))
    assert run_session(attempt, task, spec, make_settings(), sandboxes=SANDBOXES)[0].failure_cause == FailureCause.no_patch


@pytest.mark.slow  # waits out an agent's time limit
def test_command_agent_edits_and_times_out(tiny_repo, tmp_path, make_settings):
    task = _task(tiny_repo)
    editing = AGENT_SPEC.validate_python(dict(name="sed", kind="command",
                                              command="sed -i 's/sum(i for i in range(n))/n*(n-1)\\/\\/2/' tiny/__init__.py"
                                                      " && cat {prompt_file} > /dev/null"))
    hanging = AGENT_SPEC.validate_python(dict(name="hang", kind="command", command="echo start; sleep 600", time_limit_s=1.5))
    out = {}
    for spec in (editing, hanging):
        attempt = Attempt.make(task, spec, 0, make_agent(spec).fingerprint(task))
        out[spec.name] = run_session(attempt, task, spec, make_settings(), sandboxes=SANDBOXES)[0]
    assert out["sed"].failure_cause is None and "n*(n-1)//2" in out["sed"].patch
    assert out["hang"].failure_cause == FailureCause.agent_timeout


def test_attempt_ids_are_stable_and_content_derived(tiny_repo):
    task = _task(tiny_repo)
    spec = AGENT_SPEC.validate_python(dict(name="human", kind="human"))
    fp = make_agent(spec).fingerprint(task)
    assert Attempt.make(task, spec, 0, fp).id == Attempt.make(task, spec, 0, fp).id
    assert Attempt.make(task, spec, 0, fp).id != Attempt.make(task, spec, 1, fp).id
    changed = task.model_copy(update={"benchmark": BenchmarkSpec(kind="latency", command="python -c 'print(2)'")})
    assert Attempt.make(changed, spec, 0, fp).id != Attempt.make(task, spec, 0, fp).id


def test_unknown_agent_is_a_clear_error():
    with pytest.raises(AgentConfigError, match="unknown agent 'gpt'"):
        parse_agents("human,gpt")
