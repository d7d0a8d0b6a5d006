"""The index of finished attempts: what resume and status read at scale, never ahead of the records it names."""

import json

from isobench_ray.schema import Attempt, AttemptRecord, FailureCause, Status
from isobench_ray.store import INDEX, RunStore


def _record(i: int, cause: FailureCause | None = None) -> AttemptRecord:
    attempt = Attempt(task_id=f"t{i % 3}", agent="a" if i % 2 else "b", rollout=0, id=f"t{i}.x.0.{i:04d}")
    return AttemptRecord(attempt=attempt, status=Status.failed if cause else Status.success, failure_cause=cause)


def test_each_record_adds_one_line_and_a_cleared_record_its_tombstone(tmp_path):
    store = RunStore(tmp_path, background_writes=True)
    for i in range(6):
        store.save_stage(f"t{i}.x.0.{i:04d}", "record", _record(i, FailureCause.infra_error if i == 5 else None))
    store.clear_attempt("t1.x.0.0001", ("record",))
    store.flush()
    lines = [json.loads(line) for line in (tmp_path / INDEX).read_text().splitlines()]
    assert len(lines) == 7 and lines[-1] == {"id": "t1.x.0.0001", "cleared": True}
    fresh = RunStore(tmp_path)  # what a resumed driver or `isobench status` reads: the index alone
    assert sorted(fresh.finished()) == [f"t{i}.x.0.{i:04d}" for i in (0, 2, 3, 4, 5)]
    assert fresh.is_done("t0.x.0.0000") and not fresh.is_done("t1.x.0.0001") and not fresh.is_done("t5.x.0.0005")
    assert fresh.finished()["t2.x.0.0002"] == {"id": "t2.x.0.0002", "task_id": "t2", "agent": "b", "status": "success",
                                               "failure_cause": None}


def test_a_missing_or_torn_index_is_rebuilt_from_the_folders(tmp_path):
    store = RunStore(tmp_path)
    for i in range(4):
        store.save_stage(f"t{i}.x.0.{i:04d}", "record", _record(i))
    (tmp_path / INDEX).unlink()
    assert len(RunStore(tmp_path).finished()) == 4 and len((tmp_path / INDEX).read_text().splitlines()) == 4
    with open(tmp_path / INDEX, "ab") as fh:  # a driver killed mid-append
        fh.write(b'{"id": "t9.x.0.00')
    assert sorted(RunStore(tmp_path).finished()) == [f"t{i}.x.0.{i:04d}" for i in range(4)]
    assert all(json.loads(line) for line in (tmp_path / INDEX).read_text().splitlines())  # rewritten whole


def test_status_reads_the_index(tmp_path):
    from typer.testing import CliRunner

    from isobench_ray.cli import app

    store = RunStore(tmp_path)
    store.write_json("plan.json", [{"id": f"t{i}.x.0.{i:04d}"} for i in range(5)])
    for i in range(3):
        store.save_stage(f"t{i}.x.0.{i:04d}", "record", _record(i))
    for path in (tmp_path / "attempts").glob("*/record.json"):
        path.unlink()  # status never opens them: the index answers
    result = CliRunner().invoke(app, ["status", str(tmp_path)])
    assert result.exit_code == 0 and "3/5 attempts done" in result.output, result.output
    assert "rerun the same command to resume" in result.output


def test_a_record_lost_from_its_folder_is_redone_whatever_the_index_says(tmp_path):
    store = RunStore(tmp_path)
    store.save_stage("t0.x.0.0000", "record", _record(0))
    (tmp_path / "attempts" / "t0.x.0.0000" / "record.json").unlink()  # by hand, or a disk that lost it
    fresh = RunStore(tmp_path)
    assert not fresh.is_done("t0.x.0.0000") and "t0.x.0.0000" not in RunStore(tmp_path).finished()
