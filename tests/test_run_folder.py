"""A run folder is only ever deleted by its own run; careless input stops before anything is lost; a
resumed run whose tasks or agents changed stops and names them."""

import json
from pathlib import Path

import pytest

from isobench_ray import demo, runner
from isobench_ray.agents import AgentConfigError, parse_agents
from isobench_ray.runner import PlanError, check_resume
from isobench_ray.tasks import TaskFileError


def _fake_run(folder: Path, identity: dict | None = None) -> None:
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"identity": identity or {}}))


def test_fresh_refuses_a_folder_that_holds_other_runs(tmp_path, make_settings):
    results = tmp_path / "results"
    _fake_run(results / "a")
    keep = results / "a" / "run.json"
    with pytest.raises(PlanError, match="holds other runs"):
        runner.run(str(demo.TASKS_FILE), parse_agents("noop"), results, make_settings(), fresh=True)
    assert keep.exists()


def test_fresh_refuses_a_folder_that_is_not_a_run(tmp_path, make_settings):
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("years of work")
    with pytest.raises(PlanError, match="not an isobench run"):
        runner.run(str(demo.TASKS_FILE), parse_agents("noop"), mine, make_settings(), fresh=True)
    assert (mine / "chapter1.tex").read_text() == "years of work"


def test_fresh_deletes_nothing_when_the_task_file_is_bad(tmp_path, make_settings):
    run = tmp_path / "run"
    _fake_run(run)
    (run / "attempts").mkdir()
    (run / "attempts" / "measured.json").write_text("{}")
    with pytest.raises(TaskFileError):
        runner.run(str(tmp_path / "typo.yaml"), parse_agents("noop"), run, make_settings(), fresh=True)
    assert (run / "attempts" / "measured.json").exists()


def test_a_task_id_that_does_not_exist_stops_before_any_work(tmp_path, make_settings):
    demo.build_repo()
    with pytest.raises(PlanError, match="demo-sampler: no such task.*did you mean .*demo-sampler-python-loop"):
        runner.run(str(demo.TASKS_FILE), parse_agents("noop"), tmp_path / "run", make_settings(),
                   task_ids=["demo-sampler"])
    assert not (tmp_path / "run" / "attempts").exists()


def test_no_agent_named_is_an_error():
    with pytest.raises(AgentConfigError, match="no agent named"):
        parse_agents("")


def test_an_out_that_is_a_file_is_a_clear_error(tmp_path, make_settings):
    out = tmp_path / "out"
    out.write_text("not a folder")
    with pytest.raises(PlanError, match="--out"):
        runner.run(str(demo.TASKS_FILE), parse_agents("noop"), out, make_settings())


def test_resuming_after_a_task_or_agent_changed_stops_and_names_them(tmp_path):
    before = {"measurement": {}, "tasks": {"t1": "aaa", "t2": "bbb"},
              "agents": {"mine": {"t1": {"command": "old"}, "t2": {"command": "old"}}, "noop": {"t1": {}, "t2": {}}}}
    _fake_run(tmp_path / "run", before)
    now = json.loads(json.dumps(before))
    now["tasks"]["t2"] = "ccc"
    now["agents"]["mine"]["t1"] = {"command": "new"}
    with pytest.raises(PlanError) as err:
        check_resume(tmp_path / "run", {}, now)
    assert "task t2" in str(err.value) and "agent mine" in str(err.value) and "noop" not in str(err.value)
    check_resume(tmp_path / "run", {}, now, accept_changed=True)  # asked for: both versions kept apart
    check_resume(tmp_path / "run", {}, before)  # unchanged: resumes


def test_status_says_whether_the_driver_runs_and_how_to_resume(tmp_path):
    from typer.testing import CliRunner

    from isobench_ray.cli import app
    from isobench_ray.schema import Attempt, AttemptRecord, FailureCause, NoopSpec, Status
    from isobench_ray.store import RunLock, RunStore
    from isobench_ray.tasks import load_tasks

    task = load_tasks(demo.TASKS_FILE).tasks[0]
    attempts = [Attempt.make(task, NoopSpec(name="noop"), r, {}) for r in range(2)]
    store = RunStore(tmp_path / "run")
    store.write_json("plan.json", [a.model_dump() for a in attempts])
    store.save_stage(attempts[0].id, "record", AttemptRecord(attempt=attempts[0], status=Status.failed,
                                                             failure_cause=FailureCause.no_patch))
    store.write_json("status.json", {"running": {"session": 1}, "updated": 1_700_000_000})
    stopped = CliRunner().invoke(app, ["status", str(tmp_path / "run")])
    assert stopped.exit_code == 0
    assert "1/2 attempts done" in stopped.output and "no_patch" in stopped.output
    assert "stopped: the driver is gone" in stopped.output and "rerun the same command" in stopped.output
    assert "{" not in stopped.output  # a table, not Python dicts
    with RunLock(tmp_path / "run"):
        running = CliRunner().invoke(app, ["status", str(tmp_path / "run")])
    assert "running: driver pid" in running.output and "session 1" in running.output
    assert "stopped" not in running.output


def test_the_error_line_of_a_traceback_is_its_cause():
    from isobench_ray.text import error_line

    assert error_line("Traceback (most recent call last):\n  File 'x', line 1\nOSError: disk full") == "OSError: disk full"
    assert error_line("\x1b[36mray::session()\x1b[39m crashed\n  more") == "ray::session() crashed"


def test_a_dry_run_says_what_the_plan_needs_and_writes_nothing(tmp_path, make_settings):
    from isobench_ray.runner import DryRun

    demo.build_repo()
    with pytest.raises(DryRun) as needs:
        runner.run(str(demo.TASKS_FILE), parse_agents("human,noop"), tmp_path / "run", make_settings(rounds=3,
                   max_rounds=6), dry_run=True)
    text = str(needs.value)
    assert "10 attempts: human 5, noop 5" in text and "engine builds" in text and "GPU-hours" in text
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- careless task files (case 13)


def _demo_doc(url: str | None = None) -> dict:
    import yaml

    doc = yaml.safe_load(demo.TASKS_FILE.read_text())
    doc["tasks"] = doc["tasks"][:1]
    for spec in doc["repos"].values():
        spec["url"] = url or str((demo.TASKS_FILE.parent / spec["url"]).resolve())
    return doc


def test_one_task_id_in_two_files_of_a_folder_is_an_error_naming_both(tmp_path):
    import yaml

    from isobench_ray.tasks import load_tasks

    (tmp_path / "a.yaml").write_text(yaml.safe_dump(_demo_doc()))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(_demo_doc()))
    loaded = load_tasks(tmp_path)
    assert len(loaded.tasks) == 1 and loaded.tasks[0].source.endswith("a.yaml")
    (problem,) = loaded.errors
    assert problem.source.endswith("b.yaml") and problem.field == "id" and "a.yaml has it too" in problem.message


@pytest.mark.parametrize("name, text", [("empty.jsonl", ""), ("obj.json", "{}"), ("arr.json", "[]"),
                                        ("none.yaml", "tasks: []\n")])
def test_a_task_file_without_records_fails_validation(tmp_path, name, text):
    from typer.testing import CliRunner

    from isobench_ray.cli import app

    (tmp_path / name).write_text(text)
    result = CliRunner().invoke(app, ["tasks", "validate", "--no-fetch", str(tmp_path / name)])
    assert result.exit_code == 1 and "no task records" in result.output, result.output


def test_an_unreachable_repository_stops_the_run_with_gits_reason(tmp_path, make_settings):
    import yaml

    url = "https://127.0.0.1:9/nowhere.git"  # nothing listens on the discard port
    (tmp_path / "tasks.yaml").write_text(yaml.safe_dump(_demo_doc(url)))
    with pytest.raises(PlanError) as caught:
        runner.run(str(tmp_path / "tasks.yaml"), parse_agents("noop"), tmp_path / "run", make_settings())
    text = str(caught.value)
    assert f"{url} cannot be reached now: fatal: unable to access" in text and "connect" in text.lower(), text
    assert not text.rstrip().endswith("'") and not (tmp_path / "run" / "attempts").exists()
