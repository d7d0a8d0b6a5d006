"""The strict verdict (scoring/verdicts.py), the paired estimate, the policies, regrade and agent comparisons.

Each rule has a test that fails when the rule is broken: a margin widened by noise, beats/worse on the margin
alone, a missing sample count, inconclusive folded into a pass or a failure."""

import hashlib
import json
import math

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from isobench_ray.cli import app
from isobench_ray.regrade import read_lenient, regrade
from isobench_ray.schema import ArmResult, Attempt, AttemptRecord, HardClass, Measurements, Run, Scores, Status, VerdictCause
from isobench_ray.scoring import compare
from isobench_ray.scoring.hard import score
from isobench_ray.scoring.policies import POLICIES, Grading
from isobench_ray.scoring.soft import hard_pass_ci, quadrant_ci, success_ci
from isobench_ray.scoring.stats import Interval, paired_interval, speedup_interval
from isobench_ray.scoring.verdicts import interval_verdict, samples_needed, shortfall
from isobench_ray.store import RunStore

IV = Interval


def _iv(low_pct, high_pct):
    return IV(1 + (low_pct + high_pct) / 200, 1 + low_pct / 100, 1 + high_pct / 100)


# ---------------------------------------------------------------- the rule on an interval


def test_similar_is_the_fixed_margin_however_noisy_the_task():
    # the issue: noop measured -48..-61% against the human, A/A noise 40-74%: never `similar`
    v = interval_verdict(_iv(-61, -48), margin=5.0, noise=74.0, n=5)
    assert v.hard_class is HardClass.inconclusive and v.cause is VerdictCause.too_noisy
    assert interval_verdict(_iv(-8, 2), 5.0, noise=40.0, n=5).hard_class is HardClass.inconclusive
    assert interval_verdict(_iv(-4, 4), 5.0, noise=40.0, n=5).hard_class is HardClass.similar
    assert interval_verdict(_iv(-4, 4), 5.0, noise=None, n=5).hard_class is HardClass.similar


def test_beats_and_worse_must_clear_the_larger_of_margin_and_noise():
    assert interval_verdict(_iv(10, 20), 5.0, noise=None, n=5).hard_class is HardClass.beats
    assert interval_verdict(_iv(10, 20), 5.0, noise=8.0, n=5).hard_class is HardClass.beats
    assert interval_verdict(_iv(10, 20), 5.0, noise=15.0, n=5).hard_class is HardClass.inconclusive
    assert interval_verdict(_iv(-20, -10), 5.0, noise=15.0, n=5).hard_class is HardClass.inconclusive
    assert interval_verdict(_iv(-40, -20), 5.0, noise=15.0, n=5).hard_class is HardClass.worse
    assert interval_verdict(_iv(6, 20), 5.0, noise=2.0, n=5).hard_class is HardClass.beats  # noise below margin: margin


def test_inconclusive_says_why():
    wide = interval_verdict(_iv(-20, 20), 5.0, noise=31.0, n=5)
    assert wide.reason.startswith("too_noisy: the A/A interval is ±31.0%") and "about 80 samples per arm" in wide.reason
    beyond = interval_verdict(_iv(10, 18), 5.0, noise=25.0, n=5)
    assert beyond.cause is VerdictCause.too_noisy and "clears the ±5% margin but not the task's noise" in beyond.reason
    edge = interval_verdict(_iv(2, 8), 5.0, noise=3.0, n=5)
    assert edge.cause is VerdictCause.straddles and edge.reason.startswith("straddles:")
    assert samples_needed(10.0, 5, 5.0) == 20 and samples_needed(float("inf"), 5, 5.0) is None


# ---------------------------------------------------------------- attempts: samples, disturbed runs, scores


def _arm(name, values_by_round, disturbed_rounds=()):
    runs = [Run(arm=name, round=r, metrics={"avg_latency": v}, disturbed=r in disturbed_rounds)
            for r, v in enumerate(values_by_round)]
    return ArmResult(arm=name, commit="c", command="bench", runs=runs)


def _measured(base, human, agent, base2=None, attempt_id="t.a.0.x", disturbed=None):
    arms = [_arm("baseline", base), _arm("human", human),
            _arm("agent", agent, (disturbed or {}).get("agent", ())), *([_arm("baseline2", base2)] if base2 else [])]
    return Measurements(attempt_id=attempt_id, slot="s", primary_metric="avg_latency", higher_is_better=False,
                        arms=arms, order=[["baseline", "human", "agent"]] * len(base))


def _lognormal(n, cv, seed, scale=1.0):
    return list(scale * np.exp(np.random.default_rng(seed).normal(0, cv, n)))


def test_an_arm_short_of_clean_samples_is_inconclusive_disturbed_or_few():
    ok = [1.0, 1.01, 0.99, 1.0, 1.02, 1.0]
    m = _measured(ok, ok, ok, ok, disturbed={"agent": (0, 1, 2)})
    v = shortfall(m, 5)
    assert v.cause is VerdictCause.disturbed and v.reason == "disturbed: arm agent has 3 clean samples of 5 (3 disturbed runs not counted)"
    s = score(m, min_samples=5)
    assert s.hard_class_ci is HardClass.inconclusive and s.verdict_cause is VerdictCause.disturbed
    few = _measured(ok, ok, ok, ok[:3])
    assert shortfall(few, 5).cause is VerdictCause.few_samples and "arm baseline2 has 3" in shortfall(few, 5).reason
    assert shortfall(m, 3) is None


def test_score_stores_margin_band_and_reason():
    base, base2 = _lognormal(8, 0.15, 1), _lognormal(8, 0.15, 2)
    s = score(_measured(base, _lognormal(8, 0.15, 3), _lognormal(8, 0.15, 4), base2), band_pct=5.0, min_samples=5)
    assert s.margin_pct == 5.0 and s.band_pct == pytest.approx(max(5.0, s.noise_pct)) and s.noise_pct > 5
    assert s.hard_class_ci is HardClass.inconclusive and s.verdict_reason.startswith("too_noisy")
    assert s.interval_method in ("independent", "paired")


# ---------------------------------------------------------------- inconclusive is its own count


def test_the_ci_twins_keep_inconclusive_apart():
    def scores(cls, correctness="preserved"):
        return Scores(attempt_id="a", primary_metric="m", higher_is_better=True, hard_class_ci=cls, correctness=correctness)

    assert hard_pass_ci(scores(HardClass.similar)) is True and hard_pass_ci(scores(HardClass.worse)) is False
    assert hard_pass_ci(scores(HardClass.inconclusive)) is None
    assert hard_pass_ci(scores(HardClass.inconclusive, "broken")) is False
    assert quadrant_ci(True, None) == "inconclusive" and quadrant_ci(True, True) == "Q1" and quadrant_ci(None, None) is None
    counts = success_ci([True, None, False, None])
    assert (counts["success"], counts["inconclusive"], counts["failure"]) == (1, 2, 1)
    assert counts["rate"] == 0.25 and counts["decided_rate"] == 0.5 and counts["inconclusive_rate"] == 0.5


# ---------------------------------------------------------------- the paired estimate


def test_the_paired_estimate_cancels_drift_shared_by_a_round():
    drift = [1.0, 1.3, 0.8, 1.5, 0.9, 1.2, 1.1, 0.7]  # the machine slows and speeds up between rounds
    wobble = _lognormal(8, 0.01, 5)
    human = [d * w for d, w in zip(drift, wobble)]
    agent = [d * 1.0 for d in drift]
    paired = paired_interval(dict(enumerate(agent)), dict(enumerate(human)), higher_is_better=False)
    independent = speedup_interval(agent, human, higher_is_better=False)
    assert paired.low <= 1.0 <= paired.high and paired.half_width_pct < 3 < independent.half_width_pct


def test_the_paired_estimate_uses_rounds_both_arms_have_and_orients():
    faster = paired_interval({0: 0.5, 1: 0.5, 2: 0.55, 3: 0.5}, {0: 1.0, 1: 1.0, 3: 1.05}, higher_is_better=False)
    assert 1.8 < faster.point < 2.2 and faster.low > 1.5  # round 2 has no reference and is left out
    assert paired_interval({0: 1.0}, {1: 1.0}, True) is None
    assert math.isinf(paired_interval({0: 1.0}, {0: 1.0}, True).high)


def test_the_paired_interval_over_five_rounds_is_as_wide_as_a_t_interval():
    logs = np.array([0.1, -0.1, 0.05, -0.05, 0.0])  # a percentile bootstrap of 5 values is too narrow (docs)
    iv = paired_interval(dict(enumerate(np.exp(logs))), dict.fromkeys(range(5), 1.0), higher_is_better=True)
    t_half = 2.776 * logs.std(ddof=1) / math.sqrt(5)
    assert math.log(iv.high) == pytest.approx(t_half, rel=0.1) and math.log(iv.low) == pytest.approx(-t_half, rel=0.1)


# ---------------------------------------------------------------- the policies


def test_each_policy_on_a_clear_case():
    quiet = [1.0, 1.002, 0.998, 1.001, 0.999, 1.0]
    equal = _measured(quiet, [0.5 * x for x in quiet], [0.5 * x for x in reversed(quiet)], quiet)
    slower = _measured(quiet, [0.5 * x for x in quiet], quiet, quiet)
    g = Grading(min_samples=5)
    assert {name: p(equal, g).hard_class for name, p in POLICIES.items()} == {
        "paper": HardClass.similar, "strict": HardClass.similar, "gso": HardClass.similar, "swe-perf": HardClass.similar}
    assert all(p(slower, g).hard_class is HardClass.worse for p in POLICIES.values())
    no_gain = _measured(quiet, quiet, quiet, quiet)  # agent = human = baseline: GSO wants 1.1x over baseline
    assert POLICIES["gso"](no_gain, g).hard_class is HardClass.worse and "missed" in POLICIES["gso"](no_gain, g).reason


# ---------------------------------------------------------------- regrade


def _hash_tree(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "regrade" not in p.parts}


def _store_attempt(store, task, m, scores=None):
    attempt = Attempt(task_id=task, agent="a", rollout=0, id=m.attempt_id)
    scores = scores or score(m, min_samples=5)
    store.save_attempt(attempt)
    store.save_stage(attempt.id, "measurements", m)
    store.save_stage(attempt.id, "record", AttemptRecord(attempt=attempt, status=Status.success, measurements=m, scores=scores))


@pytest.fixture
def known_truth(tmp_path):
    """Hand-made samples with known truth, stored as a run: equal arms under heavy noise (CV 15%) and under
    low noise (0.3%), and the agent 2x slower than the human under heavy noise; 8 rounds each."""
    heavy = {arm: _lognormal(8, 0.15, seed) for seed, arm in enumerate(("b", "h", "a", "b2", "slow"))}
    low = {arm: _lognormal(8, 0.003, 10 + seed) for seed, arm in enumerate(("b", "h", "a", "b2"))}
    run = tmp_path / "run"
    store = RunStore(run)
    store.write_json("run.json", {"settings": {"hard_band_pct": 5.0, "confidence": 0.95, "min_samples": 5}})
    _store_attempt(store, "equal-heavy", _measured(heavy["b"], heavy["h"], heavy["a"], heavy["b2"], "equal-heavy.a.0.x"))
    _store_attempt(store, "equal-low", _measured(low["b"], low["h"], low["a"], low["b2"], "equal-low.a.0.x"))
    _store_attempt(store, "double-heavy", _measured(heavy["b"], heavy["h"], [2 * x for x in heavy["slow"]], heavy["b2"],
                                                    "double-heavy.a.0.x"))
    return run


def test_regrade_recovers_the_known_truth_and_touches_nothing(known_truth):
    before = _hash_tree(known_truth)
    result = regrade(known_truth, "strict")
    classes = dict(zip(result.frame["task_id"], result.frame["hard_class_ci"]))
    assert classes == {"equal-heavy": "inconclusive", "equal-low": "similar", "double-heavy": "worse"}
    assert result.out == known_truth / "regrade" / "strict.parquet" and pl.read_parquet(result.out).height == 3
    assert _hash_tree(known_truth) == before
    paper = regrade(known_truth, "paper")
    assert dict(zip(paper.frame["task_id"], paper.frame["hard_class"]))["equal-low"] == "similar"


def test_regrade_reads_an_older_run_and_names_the_flips(known_truth):
    folder = known_truth / "attempts" / "equal-heavy.a.0.x"
    record = json.loads((folder / "record.json").read_text())
    for key in ("margin_pct", "verdict_cause", "verdict_reason", "interval_method"):
        del record["scores"][key]  # written before these fields existed
    record["scores"] |= {"hard_class_ci": "similar", "band_pct": 80.0, "retired_field": 1}  # the old rule's verdict
    (folder / "record.json").write_text(json.dumps(record))
    assert read_lenient(folder / "record.json", AttemptRecord).scores.margin_pct == 5.0
    before = _hash_tree(known_truth)
    out = CliRunner().invoke(app, ["regrade", str(known_truth), "--policy", "strict"])
    assert out.exit_code == 0, out.output
    assert "1 verdicts flip" in out.output and "equal-heavy.a.0.x: similar -> inconclusive  (too_noisy:" in out.output
    assert _hash_tree(known_truth) == before and (folder / "record.json").exists()


# ---------------------------------------------------------------- agents compared


def _rows():
    rows = []
    for t in range(6):
        for r in range(3):
            rows.append({"task_id": f"t{t}", "agent": "fast", "rollout": r, "status": "success", "correctness": "preserved",
                         "speedup_vs_baseline": 1.5 + 0.01 * r, "human_speedup_vs_baseline": 1.5, "hard_pass": True,
                         "hard_pass_ci": None if r == 2 else True})
            rows.append({"task_id": f"t{t}", "agent": "slow", "rollout": r, "status": "success", "correctness": "preserved",
                         "speedup_vs_baseline": 1.0 + 0.02 * t, "human_speedup_vs_baseline": 1.5, "hard_pass": r == 0,
                         "hard_pass_ci": False})
    return rows


def test_pairwise_ratio_interval_and_order_flips():
    pair = compare.pairwise(_rows()).row(0, named=True)
    assert (pair["agent_a"], pair["agent_b"], pair["tasks"], pair["a_faster_tasks"]) == ("fast", "slow", 6, 6)
    assert pair["ratio_ci_low"] > 1.3 and pair["p_order_flips"] == 0.0


def test_pass_and_opt_at_k():
    p1 = {r["agent"]: r for r in compare.pass_at_k(_rows(), 1).to_dicts()}
    assert p1["fast"]["value"] == 1.0 and p1["slow"]["value"] == pytest.approx(1 / 3)
    assert compare.pass_at_k(_rows(), 2).filter(pl.col("agent") == "slow")["value"][0] == pytest.approx(2 / 3)
    ci = {r["agent"]: r for r in compare.pass_at_k(_rows(), 1, column="hard_pass_ci").to_dicts()}
    assert ci["fast"]["inconclusive"] == 6 and ci["fast"]["value"] == pytest.approx(2 / 3)
    opt = {r["agent"]: r["value"] for r in compare.opt_at_k(_rows(), 3).to_dicts()}
    assert opt == {"fast": 1.0, "slow": 0.0}
    assert compare.pass_at_k_estimate(5, 1, 5) == 1.0


def test_the_reports_at_k_table_keeps_a_few_k_per_agent_and_each_agents_rows_together():
    """20 rollouts a task: pass@k and opt@k at 1, 2, 4, 8, 16 and 20 (every k from 1 to 20 was 400 rows for ten
    agents, pushing the attempts off the page), pass@k first, one agent's k in order."""
    from isobench_ray.report.write import agent_comparisons, at_k_values

    assert at_k_values(20) == [1, 2, 4, 8, 16, 20] and at_k_values(3) == [1, 2, 3] and at_k_values(1) == [1]
    rows = [{**row, "rollout": row["rollout"] + 3 * extra} for extra in range(7) for row in _rows()]  # 21 a task
    table = agent_comparisons(pl.DataFrame(rows))["at_k"]
    assert table.select("measure", "agent", "k").rows()[:7] == [("pass@k", "fast", k) for k in (1, 2, 4, 8, 16, 21)] + [("pass@k", "slow", 1)]
    assert table.height == 2 * 2 * 6


def test_every_policy_says_inconclusive_disturbed_when_outside_load_left_no_clean_sample():
    """Two busy processes on the slot's cores for the whole run: every measured run disturbed. No policy has a
    number then (the paper's used to divide None by None); the record stays a measurement, not a failure."""
    runs = {arm: [Run(arm=arm, round=r, disturbed=True, metrics={"avg_latency": 1.0}) for r in range(5)]
            for arm in ("baseline", "human", "agent", "baseline2")}
    m = Measurements(attempt_id="a", slot="s", primary_metric="avg_latency", higher_is_better=False,
                     arms=[ArmResult(arm=arm, commit="c", command="x", runs=rs) for arm, rs in runs.items()])
    for name, policy in POLICIES.items():
        verdict = policy(m, Grading(min_samples=5))
        assert (verdict.hard_class, verdict.cause) == (HardClass.inconclusive, VerdictCause.disturbed), name
    s = score(m, min_samples=5)
    assert (s.hard_class, s.hard_class_ci, s.verdict_cause) == (HardClass.inconclusive, HardClass.inconclusive,
                                                                 VerdictCause.disturbed)
