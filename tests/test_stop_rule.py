"""The adaptive rounds stop on a decision, never on an interval's width alone: decided (the strict verdict
is beats, similar or worse), out of reach at this noise within max_rounds, the slot budget, or max_rounds."""

import random
from pathlib import Path

from isobench_ray import demo
from isobench_ray.engines import engine_named
from isobench_ray.hardware import Gpus
from isobench_ray.schema import BenchSlot, Run
from isobench_ray.stages.bench_context import BenchContext
from isobench_ray.stages.rounds import ArmState, stop_reason
from isobench_ray.tasks import load_tasks

ARMS = ("baseline", "human", "agent", "baseline2")


def _ctx(settings) -> BenchContext:
    task = next(t for t in load_tasks(demo.TASKS_FILE).tasks if t.benchmark.kind == "serving")
    engine = engine_named(task.repo.engine_name)
    return BenchContext(slot=BenchSlot(name="s"), settings=settings, gpus=Gpus(()), engine=engine, task=task,
                        bench=engine.bench_command(task.benchmark, None), sandbox_of={}, trees={}, io={}, guard=None, base=Path("/nonexistent"),
                        logs={})


def _states(rounds: int, agent_factor: float, cv: float, seed: int = 0) -> dict:
    rng = random.Random(seed)
    states = {arm: ArmState() for arm in ARMS}
    for r in range(rounds):
        drift = rng.gauss(1.0, cv)  # what moves every arm of a round alike
        for arm in ARMS:
            factor = agent_factor if arm == "agent" else (1.0 if arm != "human" else 1.0)
            value = 100.0 * factor * drift * rng.gauss(1.0, cv / 4)
            states[arm].result_runs.append(Run(arm=arm, round=r, metrics={"output_throughput": value}))
    return states


def test_equal_arms_on_a_quiet_slot_stop_as_soon_as_similar_is_decided(make_settings):
    ctx = _ctx(make_settings(rounds=3, max_rounds=8, min_samples=5))
    assert stop_reason(ctx, _states(4, 1.0, 0.002), 4) == ""  # below min_samples: go on, however narrow
    reason = stop_reason(ctx, _states(5, 1.0, 0.002), 5)
    assert reason.startswith("decided after 5 rounds: similar")


def test_a_2x_difference_is_decided_worse_or_better_not_similar(make_settings):
    ctx = _ctx(make_settings(rounds=3, max_rounds=8, min_samples=5))
    assert stop_reason(ctx, _states(5, 2.0, 0.02), 5).startswith("decided after 5 rounds: beats")
    assert stop_reason(ctx, _states(5, 0.5, 0.02), 5).startswith("decided after 5 rounds: worse")


def test_heavy_noise_stops_early_when_max_rounds_cannot_decide_it(make_settings):
    ctx = _ctx(make_settings(rounds=3, max_rounds=8, min_samples=5))
    states = {arm: ArmState() for arm in ARMS}
    rng = random.Random(1)
    for r in range(5):  # independent noise of ±40% per run: no pairing can cancel it
        for arm in ARMS:
            states[arm].result_runs.append(Run(arm=arm, round=r, metrics={"output_throughput": 100 * rng.uniform(0.6, 1.4)}))
    assert stop_reason(ctx, states, 5).startswith("cannot be decided within max_rounds (8)")


def test_the_slot_budget_and_max_rounds_end_an_undecided_attempt(make_settings):
    ctx = _ctx(make_settings(rounds=3, max_rounds=8, min_samples=5, slot_budget_min=1.0))
    states = _states(5, 1.05, 0.02, seed=3)  # 5% apart: the interval straddles the margin, more rounds may decide
    assert stop_reason(ctx, states, 5, elapsed_s=1.0) == ""
    assert stop_reason(ctx, states, 5, elapsed_s=61.0).startswith("slot budget (1 min) spent after 5 rounds: straddles")
    at_most_five = _ctx(make_settings(rounds=3, max_rounds=5, min_samples=5, slot_budget_min=None))
    assert stop_reason(at_most_five, states, 5).startswith("max rounds (5): straddles")
