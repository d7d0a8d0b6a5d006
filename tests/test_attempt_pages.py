"""Every attempt gets a page of its own: what the agent did and how it was measured, escaped and bounded."""

from isobench_ray import demo
from isobench_ray.report.write import write_report
from isobench_ray.schema import (
    ArmResult,
    Attempt,
    AttemptRecord,
    HardClass,
    Judgement,
    Measurements,
    NoopSpec,
    Run,
    Scores,
    Session,
    Status,
    Vote,
)
from isobench_ray.store import RunStore
from isobench_ray.tasks import load_tasks

HOSTILE = "+print('<script>alert(1)</script>')\n"


def _record(store: RunStore) -> AttemptRecord:
    task = load_tasks(demo.TASKS_FILE).tasks[0]
    attempt = Attempt.make(task, NoopSpec(name="mine"), 0, {})
    runs = [Run(arm=arm, round=r, metrics={"output_throughput": 100.0 + r + (30 if arm == "agent" else 0)})
            for r in range(3) for arm in ("baseline", "human", "agent", "baseline2")]
    m = Measurements(attempt_id=attempt.id, slot="s", primary_metric="output_throughput", higher_is_better=True,
                     arms=[ArmResult(arm=a, commit="c", command="x", runs=[r for r in runs if r.arm == a])
                           for a in ("baseline", "human", "agent", "baseline2")])
    record = AttemptRecord(attempt=attempt, status=Status.success, session=Session(attempt_id=attempt.id, patch=HOSTILE,
                                                                                   steps=7, tokens=12_345),
                           measurements=m, scores=Scores(attempt_id=attempt.id, primary_metric="output_throughput",
                                                         higher_is_better=True, speedup_vs_baseline=1.3,
                                                         hard_class=HardClass.beats))
    folder = store.attempt_dir(attempt.id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "patch.diff").write_text("--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-old\n" + HOSTILE)
    (folder / "prompt.md").write_text("Make the sampler fast.")
    (folder / "bench").mkdir()
    (folder / "bench" / "agent.r0.0.log").write_text("x" * 5_000_000 + "\nthe end of a long log")
    store.save_stage(attempt.id, "record", record)
    store.save_stage(attempt.id, "judgement", Judgement(attempt_id=attempt.id, votes=[Vote(judge="j", error="no reply")],
                                                        judge_error="no reply", hack_flags=["addresses_judge"]))
    return record


def test_each_attempt_has_a_linked_escaped_bounded_page(tmp_path):
    store = RunStore(tmp_path / "run")
    record = _record(store)
    write_report(tmp_path / "run")
    page_path = tmp_path / "run" / "attempts" / record.attempt.id / "index.html"
    page = page_path.read_text()
    report = (tmp_path / "run" / "report.html").read_text()
    assert f'href="attempts/{record.attempt.id}/index.html"' in report
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the patch is text, not code
    assert 'class="add"' in page and "Make the sampler fast." in page and "the end of a long log" in page
    assert "addresses_judge" in page and "no reply" in page and "12,345" in page and "<svg" in page
    assert page_path.stat().st_size < 200_000  # a 5 MB log is cut to its head and tail
