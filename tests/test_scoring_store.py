"""Pure parts: speedup orientation, the hard class band, outcome blame, atomic results, the report table."""


import pytest

from isobench_ray.engines import ENGINES, GENERIC
from isobench_ray.report.frames import COLUMNS, attempts_frame
from isobench_ray.schema import ArmResult, Attempt, AttemptRecord, FailureCause, HardClass, Measurements, Run, Status
from isobench_ray.scoring.hard import hard_class, outcome, score, speedup
from isobench_ray.store import RunStore, write_atomic


def _measurements(metric, b, h, a, agent_cause=None):
    def arm(name, values, cause=None):
        return ArmResult(arm=name, commit="c", command="x", runs=[Run(arm=name, round=i, metrics={metric: v}) for i, v in enumerate(values)],
                         failure_cause=cause)
    return Measurements(attempt_id="t.a.0.x", slot="cpu", primary_metric=metric, higher_is_better=GENERIC.higher_is_better(metric),
                        arms=[arm("baseline", b), arm("human", h), arm("agent", a, agent_cause)])


@pytest.mark.parametrize("metric, expected", [("output_throughput", True), ("requests_per_second", True), ("tokens_per_second", True),
                                              ("avg_latency", False), ("mean_ttft_ms", False), ("median_tpot_ms", False), ("p99_itl_ms", False)])
def test_direction_of_metrics_comes_from_each_engines_table(metric, expected):
    for engine in (*ENGINES.values(), GENERIC):
        assert engine.higher_is_better(metric) is expected


def test_an_unknown_metric_is_an_error_not_a_guess():
    with pytest.raises(ValueError, match="unknown metric 'speed_score'"):
        GENERIC.higher_is_better("speed_score")


def test_speedup_is_oriented_so_that_above_one_is_faster():
    assert speedup(200.0, 100.0, higher_better=True) == 2.0
    assert speedup(0.5, 1.0, higher_better=False) == 2.0  # half the latency is twice as fast
    assert speedup(0.0, 1.0, higher_better=False) is None


def test_hard_class_uses_a_five_percent_band():
    assert hard_class(5.1, 5.0) is HardClass.beats
    assert hard_class(4.9, 5.0) is HardClass.similar and hard_class(-4.9, 5.0) is HardClass.similar
    assert hard_class(-5.1, 5.0) is HardClass.worse
    assert hard_class(None, 5.0) is HardClass.failed


def test_latency_scores_use_medians_and_compare_agent_with_human():
    s = score(_measurements("avg_latency", [1.0, 1.1, 0.9], [0.5, 0.5, 0.6], [0.25, 0.26, 0.24]))
    assert s.baseline_value == 1.0 and s.human_value == 0.5 and s.agent_value == 0.25
    assert s.speedup_vs_baseline == pytest.approx(4.0) and s.human_speedup_vs_baseline == pytest.approx(2.0)
    assert s.agent_vs_human_pct == pytest.approx(100.0) and s.hard_class is HardClass.beats


def test_blame_goes_to_the_task_when_baseline_fails_and_to_the_agent_when_its_arm_fails():
    broken_base = _measurements("avg_latency", [], [0.5], [0.5])
    assert outcome(broken_base)[:2] == (Status.error, FailureCause.baseline_failed)
    crashed = _measurements("avg_latency", [1.0], [0.5], [], agent_cause=FailureCause.server_crash)
    assert outcome(crashed)[:2] == (Status.failed, FailureCause.server_crash)
    assert score(crashed).hard_class is HardClass.failed


def test_atomic_write_leaves_old_or_new_never_half(tmp_path, monkeypatch):
    path = tmp_path / "x.json"
    write_atomic(path, "old")

    def explode(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", explode)
    with pytest.raises(OSError):
        write_atomic(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temp file left behind


def test_report_table_has_the_documented_columns(tmp_path):
    attempt = Attempt(task_id="t", agent="a", rollout=0, id="t.a.0.x")
    m = _measurements("output_throughput", [100.0], [200.0], [205.0])
    rec = AttemptRecord(attempt=attempt, status=Status.success, measurements=m, scores=score(m))
    df = attempts_frame([rec])
    assert df.columns == COLUMNS
    row = df.row(0, named=True)
    assert row["speedup_vs_baseline"] == pytest.approx(2.05) and row["hard_class"] == "similar"
    store = RunStore(tmp_path)
    store.save_stage(attempt.id, "record", rec)
    assert store.records()[0] == rec and store.is_done(attempt.id)
