"""The index of finished attempts: what resume and status read at scale, never ahead of the records it names."""

import json

from isobench_ray.schema import Attempt, AttemptRecord, FailureCause, Session, Status
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
    line = fresh.finished()["t2.x.0.0002"]
    assert line == {"id": "t2.x.0.0002", "task_id": "t2", "agent": "b", "status": "success", "failure_cause": None,
                    "stamp": line["stamp"]} and line["stamp"]


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


# ---------------------------------------------------------------- the run's table (report/table.py)

def _measured(i: int, value: float) -> AttemptRecord:
    from isobench_ray.schema import ArmResult, Measurements, Run

    rec = _record(i)
    arms = [ArmResult(arm=arm, commit="c", command="x", runs=[Run(arm=arm, round=r, metrics={"throughput": value})
                                                               for r in range(2)]) for arm in ("baseline", "human", "agent")]
    return rec.model_copy(update={"measurements": Measurements(attempt_id=rec.attempt.id, slot="cpu", primary_metric="throughput",
                                                               higher_is_better=True, arms=arms)})


def test_the_report_reads_the_table_and_ignores_the_lines_of_a_redone_record(tmp_path):
    """A report's frames come from rows.jsonl and runs.jsonl; an attempt measured again (its record cleared and
    redone) counts once, with the new record's runs; a judgement's row replaces the record's."""
    import polars as pl

    from isobench_ray.report.write import write_report
    from isobench_ray.schema import Judgement, Vote

    store = RunStore(tmp_path, background_writes=True)
    for i in range(3):
        store.save_stage(f"t{i}.x.0.{i:04d}", "record", _measured(i, 10.0))
    store.clear_attempt("t1.x.0.0001", ("record",))
    store.save_stage("t1.x.0.0001", "record", _measured(1, 20.0))
    store.save_stage("t2.x.0.0002", "judgement", Judgement(attempt_id="t2.x.0.0002", votes=[Vote(judge="rule-based")]))
    store.flush()
    write_report(tmp_path)
    attempts, runs = pl.read_parquet(tmp_path / "attempts.parquet"), pl.read_parquet(tmp_path / "runs.parquet")
    assert sorted(attempts.get_column("attempt_id")) == [f"t{i}.x.0.{i:04d}" for i in range(3)]
    assert runs.height == 3 * 3 * 2  # three attempts, three arms, two rounds: the cleared record's runs are gone
    assert set(runs.filter(pl.col("attempt_id") == "t1.x.0.0001").get_column("value")) == {20.0}
    assert attempts.filter(pl.col("attempt_id") == "t2.x.0.0002").get_column("judges").to_list() == ["rule-based"]


def test_a_table_lost_or_cut_short_is_rebuilt_from_the_records_without_counting_runs_twice(tmp_path):
    """A run folder from before the table (no rows.jsonl, no runs.jsonl, no stamps), or one whose rows file lost
    its lines while runs.jsonl kept them: the report rebuilds what is missing from the records, under new
    stamps, so every attempt appears once and every run once."""
    import polars as pl

    from isobench_ray.report.table import ROWS, RUNS
    from isobench_ray.report.write import write_report

    store = RunStore(tmp_path)
    for i in range(4):
        store.save_stage(f"t{i}.x.0.{i:04d}", "record", _measured(i, 10.0 + i))
    (tmp_path / ROWS).write_text("".join(line for line in (tmp_path / ROWS).read_text().splitlines(True)[:2]))
    write_report(tmp_path)
    first = pl.read_parquet(tmp_path / "runs.parquet")
    assert pl.read_parquet(tmp_path / "attempts.parquet").height == 4 and first.height == 4 * 3 * 2

    for name in (ROWS, RUNS, INDEX):
        (tmp_path / name).unlink()  # an older run: records only
    write_report(tmp_path)
    attempts, runs = pl.read_parquet(tmp_path / "attempts.parquet"), pl.read_parquet(tmp_path / "runs.parquet")
    assert attempts.height == 4 and runs.sort("attempt_id", "arm", "round").equals(first.sort("attempt_id", "arm", "round"))


def test_a_judgement_from_another_store_finds_a_record_written_after_it_read_the_index(tmp_path):
    """The judges write through a store of their own beside the driver's: a record the driver wrote after the
    judges' store read the index still gets its judged row under its stamp (read from the lines added since),
    so the report shows the verdict."""
    import polars as pl

    from isobench_ray.report.write import write_report
    from isobench_ray.schema import Judgement, Vote

    driver, judges = RunStore(tmp_path, background_writes=True), RunStore(tmp_path)
    driver.save_stage("t0.x.0.0000", "record", _measured(0, 10.0))
    driver.flush()
    assert list(judges.finished()) == ["t0.x.0.0000"]
    driver.save_stage("t1.x.0.0001", "record", _measured(1, 10.0))
    driver.flush()
    judges.save_stage("t1.x.0.0001", "judgement", Judgement(attempt_id="t1.x.0.0001", votes=[Vote(judge="rule-based")]))
    write_report(tmp_path)
    attempts = pl.read_parquet(tmp_path / "attempts.parquet")
    assert attempts.filter(pl.col("attempt_id") == "t1.x.0.0001").get_column("judges").to_list() == ["rule-based"]


def test_a_judgement_saved_before_the_drivers_writer_wrote_the_record_still_reaches_the_report(tmp_path):
    """The driver hands the judges a record as it saves it, while its writer thread writes the file and the
    index line later; a rule-based judge can finish first. The judged row waits for the record's index line
    and takes the record from the judges, so the report shows the verdict (the pipeline test saw it lost)."""
    import threading

    import polars as pl

    from isobench_ray.report.write import write_report
    from isobench_ray.schema import Judgement, Vote

    driver, judges = RunStore(tmp_path, background_writes=True), RunStore(tmp_path)
    assert judges.finished() == {}
    gate = threading.Event()
    driver._submit(gate.wait)  # the writer thread busy: the record below is written after the judgement starts
    record = _measured(0, 10.0)
    driver.save_stage("t0.x.0.0000", "record", record)
    judging = threading.Thread(target=judges.save_stage, args=("t0.x.0.0000", "judgement",
                                                               Judgement(attempt_id="t0.x.0.0000", votes=[Vote(judge="rule-based")])),
                               kwargs={"judged": record})
    judging.start()
    gate.set()
    judging.join(timeout=60)
    driver.flush()
    write_report(tmp_path)
    attempts = pl.read_parquet(tmp_path / "attempts.parquet")
    assert attempts.get_column("judges").to_list() == ["rule-based"]


def test_a_finished_attempt_leaves_the_drivers_memory_once_its_record_is_written(tmp_path):
    """At 100,000 attempts a driver that kept every stage's model (patches, samples) would outgrow its node."""
    store = RunStore(tmp_path, background_writes=True)
    aid = "t0.x.0.0000"
    store.save_stage(aid, "session", Session(attempt_id=aid, patch="+x\n" * 1000))
    store.save_stage(aid, "record", _record(0))
    assert store.load_stage(aid, "session").patch  # before the writer is through: served from memory
    store.flush()
    assert not [key for key in store._cache if key[0] == aid]
    assert store.load_stage(aid, "session").patch == "+x\n" * 1000 and store.is_done(aid)  # from its files
