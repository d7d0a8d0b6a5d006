"""What a planned run needs before anything runs (`isobench run ... --dry-run`): attempts, engine builds,
models, and the benchmark slot time it will take, as a range. Pure: from the plan and the settings.

The slot time is an estimate from the rounds the settings allow and a per-kind guess of one run's length
(a serving benchmark with its server start, an offline one), not a measurement: a run's report gives the
real figures (bench_s per attempt), and a resumed run's median replaces the guess where one exists.
"""

from __future__ import annotations

import collections

from isobench_ray.config import Settings
from isobench_ray.schema import ALL_ARMS, ARMS, Attempt, Task

# seconds of one measured run, and of a server start, by benchmark kind (guesses for an H100 and an 8B model)
RUN_S = {"serving": 120.0, "latency": 60.0, "throughput": 120.0}
SERVER_START_S = 90.0


def attempt_slot_s(task: Task, settings: Settings, rounds: int) -> float:
    """Slot seconds of one attempt's benchmark at `rounds` rounds (every arm, warm-ups, server starts)."""
    m = settings.measurement
    arms = len(ALL_ARMS) if m.noise_arm else len(ARMS)
    runs = (m.warmup_runs if m.warmup_runs is not None else 1) + m.runs_per_round
    start = SERVER_START_S if task.benchmark.kind == "serving" else 0.0
    correctness = len(ARMS) * (SERVER_START_S + 60.0) if settings.correctness.enabled else 0.0
    return arms * rounds * (start + runs * RUN_S.get(task.benchmark.kind, 120.0)) + correctness


def plan_needs(plan: list[tuple[Attempt, Task, object]], settings: Settings) -> dict:
    """The run's needs: counts by repository and agent, the commits whose engine builds the arms need (the
    task's repo.wheel or repo.image names how each is had), models, and slot hours (low: min_rounds, high:
    max_rounds)."""
    tasks = {t.id: t for _, t, _ in plan}
    low = sum(attempt_slot_s(t, settings, settings.measurement.min_rounds) for _, t, _ in plan) / 3600
    high = sum(attempt_slot_s(t, settings, settings.measurement.max_rounds) for _, t, _ in plan) / 3600
    builds = {(t.repo.name, c) for t in tasks.values() for c in {t.parent_commit, t.human_commit}}
    return {
        "attempts": len(plan),
        "tasks_by_repo": dict(collections.Counter(t.repo.name for t in tasks.values())),
        "attempts_by_agent": dict(collections.Counter(a.agent for a, _, _ in plan)),
        "engine_builds": len(builds),
        "build_source": {name: next((f"{k}: {v}" for k, v in (("wheel", t.repo.wheel), ("image", t.repo.image),
                                                               ("python", t.repo.python)) if v), "the node's own install")
                         for name, t in {t.repo.name: t for t in tasks.values()}.items()},
        "models": sorted({t.model for t in tasks.values() if t.model}),
        "slot_hours": (round(low, 1), round(high, 1)),
    }


def describe(needs: dict) -> str:
    low, high = needs["slot_hours"]
    lines = [f"{needs['attempts']} attempts: " + ", ".join(f"{a} {n}" for a, n in needs["attempts_by_agent"].items()),
             "tasks by repository: " + ", ".join(f"{r} {n}" for r, n in needs["tasks_by_repo"].items()),
             f"engine builds (one per distinct commit): {needs['engine_builds']}; from "
             + "; ".join(f"{r}: {s}" for r, s in needs["build_source"].items()),
             f"models (weights on every GPU node, HF_TOKEN for gated ones): {', '.join(needs['models']) or 'none'}",
             f"benchmark slot time: {low}-{high} GPU-hours (one GPU per attempt; estimated, see docs/running-vllm-suite.md)"]
    return "\n".join(lines)
