"""End to end on a local Ray cluster: the demo suite's real engine, servers, benchmarks and replays.

One run covers every stage: human and noop on a latency task and a serving task, plus the replays that
must fail with a named cause. A second invocation over the same run directory must do nothing again.
"""

import json
import os
import re

import polars as pl
import pytest
import ray
from conftest import settings_under

from isobench_ray import demo, runner
from isobench_ray.agents import parse_agents
from isobench_ray.store import RunStore

pytestmark = pytest.mark.slow


def _replay_tasks() -> dict[str, str]:
    """Each replay's first task (replay-broken has a second: the demo's script task)."""
    first: dict[str, str] = {}
    for line in demo.PREDICTIONS.read_text().splitlines():
        if line.strip():
            first.setdefault(json.loads(line)["model_name_or_path"], json.loads(line)["instance_id"])
    return first


def _latency_task() -> str:
    import yaml

    return next(t["id"] for t in yaml.safe_load(demo.TASKS_FILE.read_text())["tasks"] if t["benchmark"]["kind"] == "latency")


# a serving task carrying the broken replays, and the latency task
CRASH_TASK = _replay_tasks()["replay-crash"]
TASKS = [_latency_task(), CRASH_TASK]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    demo.build_repo()
    base = tmp_path_factory.mktemp("pipeline")
    # three rounds keep the test short; min_samples is lowered to match (its default, 5, is for verdicts)
    settings = settings_under(base, rounds=3, max_rounds=3, min_samples=3,
                              pin_min_cores=2)  # pinned on any machine of 2 cores or more, so the test sees the cores
    out = base / "run"
    specs = parse_agents(demo.agents_arg())
    runner.run(str(demo.TASKS_FILE), specs, out, settings, task_ids=TASKS, num_cpus=2, show_progress=False)
    yield out, specs, settings
    ray.shutdown()


def _rows(out):
    return {(r["task_id"], r["agent"]): r for r in pl.read_parquet(out / "attempts.parquet").iter_rows(named=True)}


def test_human_oracle_is_measurably_faster(finished_run):
    rows = _rows(finished_run[0])
    for task in TASKS:
        row = rows[(task, "human")]
        assert row["status"] == "success", row
        assert row["speedup_vs_baseline"] >= 1.3 and row["human_speedup_vs_baseline"] >= 1.3, row


def test_noop_is_the_a_a_control(finished_run):
    rows = _rows(finished_run[0])
    for task in TASKS:
        row = rows[(task, "noop")]
        assert row["status"] == "success", row
        # doing nothing measures as nothing, within the task's own noise as measured in the same rounds
        # (baseline against baseline2; twice it, as a test's tolerance on a noisy shared machine)
        assert abs(row["speedup_vs_baseline"] - 1) * 100 <= max(row["band_pct"], 2 * (row["noise_pct"] or 0)), row
        # the strict rule never calls doing nothing as fast as the human commit (1.3x and more)
        assert row["hard_class_ci"] in ("worse", "inconclusive"), row
        assert row["hard_class"] == "worse"  # the human commit is faster than doing nothing


def test_broken_patches_fail_with_their_cause_and_never_count(finished_run):
    rows = _rows(finished_run[0])
    assert _replay_tasks()["replay-noapply"] == CRASH_TASK
    assert rows[(CRASH_TASK, "replay-noapply")]["failure_cause"] == "patch_does_not_apply"
    crash = rows[(CRASH_TASK, "replay-crash")]
    assert crash["failure_cause"] == "server_crash" and crash["status"] == "failed"
    check = RunStore(finished_run[0]).load_stage(crash["attempt_id"], "validation").checks[-1]
    assert check.name == "server_start" and not check.ok and "exited" in check.detail
    for key in [(CRASH_TASK, "replay-noapply"), (CRASH_TASK, "replay-crash")]:
        assert rows[key]["hard_class"] == "failed" and rows[key]["speedup_vs_baseline"] is None


def test_faster_by_changing_the_tokens_is_broken_and_never_a_success(finished_run):
    rows = _rows(finished_run[0])
    assert _replay_tasks()["replay-broken"] == TASKS[0]
    broken = rows[(TASKS[0], "replay-broken")]
    assert broken["status"] == "success" and broken["speedup_vs_baseline"] > 1.1, broken  # it is faster ...
    assert broken["correctness"] == "broken" and not broken["hard_pass"] and broken["quadrant"] in ("Q2", "Q4")
    record = RunStore(finished_run[0]).load_stage(broken["attempt_id"], "record")
    assert "greedy completions" in record.scores.correctness_detail
    for task in TASKS:  # the human commit and doing nothing keep every greedy token
        for agent in ("human", "noop"):
            assert rows[(task, agent)]["correctness"] == "preserved", rows[(task, agent)]
    # the demo's soft metrics come from the rule-based judge, and say so; no patch, no judgement
    human = rows[(TASKS[0], "human")]  # its own diff: the same target; its hard class vs itself is the noise's
    assert human["judges"] == "rule-based" and human["bottleneck_target"] == "same_target" and human["soft_pass"]
    assert human["quadrant"] == ("Q1" if human["hard_pass"] else "Q2")
    assert rows[(TASKS[0], "noop")]["quadrant"] is None


def test_every_stage_is_on_disk_with_the_exact_commands(finished_run):
    store = RunStore(finished_run[0])
    for record in store.records():
        folder = store.attempt_dir(record.attempt.id)
        assert (folder / "session.json").exists() and (folder / "record.json").exists()
        if record.status.value == "success":
            m = record.measurements
            assert {a.arm for a in m.arms} == {"baseline", "human", "agent", "baseline2"}
            for a in m.arms:  # every run kept; the samples are the measured runs no outside load disturbed
                measured = [r for r in a.runs if not r.warmup]
                assert len(measured) >= 3 and len(a.samples(m.primary_metric)) == sum(not r.disturbed for r in measured)
            assert [r[0] for r in m.order] == ["baseline", "human", "agent"]  # rotated: each arm goes first once
            assert all(sorted(r) == sorted(m.order[0]) for r in m.order) and m.stop_reason
            s = record.scores
            if s.verdict_cause == "disturbed" and s.speedup_ci is None:  # outside load left an arm no clean sample
                assert s.hard_class_ci == "inconclusive" and s.hard_class == "inconclusive", s
                continue
            assert s.speedup_ci[0] <= s.speedup_vs_baseline <= s.speedup_ci[1]
            assert s.noise_pct is not None and s.band_pct >= 5.0 and s.rounds == 3
            assert len({a.command for a in m.arms}) == 1  # the same workload for every arm
    assert (finished_run[0] / "report.md").read_text().startswith("# isobench report")



def test_every_run_records_what_ran_and_its_servers_start_time(finished_run):
    """runs.parquet: one row per run of every arm, with the exact commands (the port appended, the result
    flags) and, for a serving task, the start time of that round's own server."""
    runs = pl.read_parquet(finished_run[0] / "runs.parquet")
    assert runs.height == sum(len(a.runs) for r in RunStore(finished_run[0]).records() if r.measurements
                              for a in r.measurements.arms)
    serving = runs.filter(pl.col("server_command") != "")
    assert serving.height and serving.get_column("server_start_s").min() > 0
    for row in serving.iter_rows(named=True):
        port = re.search(r"--port (\d+)", row["server_command"]).group(1)
        assert f"--port {port}" in row["command"], row  # the client talked to this round's server
    offline = runs.filter(pl.col("server_command") == "")
    assert offline.height and offline.get_column("server_start_s").is_null().all()
    ports = serving.group_by("attempt_id", "arm").agg(pl.col("server_command").n_unique().alias("servers"))
    assert ports.get_column("servers").min() > 1  # a fresh server every round

def test_rerun_does_no_work_and_reports_the_same(finished_run):
    out, specs, settings = finished_run
    before = {p: p.stat().st_mtime_ns for p in out.glob("attempts/*/*.json")}
    table_before = pl.read_parquet(out / "attempts.parquet")
    runner.run(str(demo.TASKS_FILE), specs, out, settings, task_ids=TASKS, show_progress=False)
    after = {p: p.stat().st_mtime_ns for p in out.glob("attempts/*/*.json")}
    assert before == after
    assert pl.read_parquet(out / "attempts.parquet").equals(table_before)


def test_resume_redoes_only_what_is_missing(finished_run):
    out, specs, settings = finished_run
    store = RunStore(out)
    victim = next(r for r in store.records() if r.attempt.agent == "noop" and r.attempt.task_id == TASKS[0])
    folder = store.attempt_dir(victim.attempt.id)
    for name in ("measurements.json", "scores.json", "record.json"):
        os.remove(folder / name)  # as if the driver died during this attempt's benchmark
    untouched = {p: p.stat().st_mtime_ns for p in out.glob("attempts/*/record.json")}
    session_mtime = (folder / "session.json").stat().st_mtime_ns
    runner.run(str(demo.TASKS_FILE), specs, out, settings, task_ids=TASKS, show_progress=False)
    assert (folder / "record.json").exists() and (folder / "session.json").stat().st_mtime_ns == session_mtime
    assert {p: p.stat().st_mtime_ns for p in untouched} == untouched


def test_resuming_with_other_measurement_settings_stops_and_names_them(finished_run):
    out, specs, settings = finished_run
    other = settings.replace(**{"rounds": 5, "max_rounds": 5})
    with pytest.raises(runner.PlanError, match=r"rounds: 3 in the run, 5 now.*--fresh"):
        runner.run(str(demo.TASKS_FILE), specs, out, other, task_ids=TASKS, show_progress=False)


def test_a_failing_setup_is_the_tasks_error_recorded_once(finished_run, tmp_path):
    import yaml

    _, _, settings = finished_run
    doc = yaml.safe_load(demo.TASKS_FILE.read_text())
    doc["repos"]["minillm"] |= {"url": str(demo.REPO_DIR), "setup_command": "echo 'no compiler here' >&2; exit 7"}
    doc["tasks"] = [t for t in doc["tasks"] if t["id"] in TASKS]  # (the script task names a file beside the demo's)
    tasks_file = tmp_path / "tasks.yaml"
    tasks_file.write_text(yaml.safe_dump(doc))
    out, human = tmp_path / "run", parse_agents("human")
    runner.run(str(tasks_file), human, out, settings, task_ids=[TASKS[0]], show_progress=False)
    [record] = RunStore(out).records()
    assert (record.status.value, record.failure_cause.value, record.failure_stage) == ("error", "setup_failed", "measurements")
    assert "no compiler here" in record.detail
    record_file = RunStore(out).attempt_dir(record.attempt.id) / "record.json"
    mtime = record_file.stat().st_mtime_ns
    runner.run(str(tasks_file), human, out, settings, task_ids=[TASKS[0]], show_progress=False)
    assert record_file.stat().st_mtime_ns == mtime  # not run again by a plain rerun


def test_every_arm_records_its_cores_and_every_sample_its_telemetry(finished_run):
    out, _, _ = finished_run
    measured = [r for r in RunStore(out).records() if r.measurements]
    assert measured
    for rec in measured:
        serving = rec.measurements.arm("baseline").server_command is not None
        for arm in rec.measurements.arms:
            assert arm.client_cpus, (rec.attempt.id, arm.arm)
            if serving and len(arm.client_cpus + arm.server_cpus) >= 2:
                assert arm.server_cpus and not set(arm.server_cpus) & set(arm.client_cpus)  # disjoint
            for run in arm.runs:
                assert {"start", "end"} <= set(run.telemetry) and "load1" in run.telemetry["start"]
