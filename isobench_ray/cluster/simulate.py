"""A stand-in workload for the cluster layer: stages that sleep instead of working.

Used by `benchmarks/scheduling.py` (makespan against the ideal on many GPUs) and by the tests that kill
nodes and drivers: they test scheduling, retries and resume, which do not depend on what a stage does.
Durations are drawn from a seeded distribution per attempt (agent sessions of minutes, benchmarks of a
few minutes), scaled down by `scale` seconds per simulated minute.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from functools import partial

from isobench_ray.config import Settings
from isobench_ray.sandbox.local import LocalSandboxes
from isobench_ray.schema import (
    AgentSpec,
    ArmResult,
    Attempt,
    BenchmarkSpec,
    Check,
    Measurements,
    NoopSpec,
    RepoSpec,
    Run,
    Session,
    Task,
    Validation,
)
from isobench_ray.stages import Stages


@dataclass(frozen=True)
class Durations:
    """Seconds for each stage of one attempt (already scaled)."""

    session: float
    validation: float
    benchmark: float


def durations(attempt_id: str, scale: float) -> Durations:
    rng = random.Random(attempt_id)
    # agent sessions: 2-30 min, most around 10; validation: ~0.5 min; 3-way benchmark: 3-8 min
    return Durations(session=scale * min(30.0, max(2.0, rng.lognormvariate(2.3, 0.5))),
                     validation=scale * rng.uniform(0.3, 0.8), benchmark=scale * rng.uniform(3.0, 8.0))


def tasks(n: int, gpus: int = 1, start: int = 0) -> list[Task]:
    """`gpus`: what each task's workload needs on one node (tensor parallelism)."""
    repo = RepoSpec(name="sim", url="sim://nowhere")
    return [Task(id=f"sim-{i:04d}", repo=repo, human_commit=f"{i:040x}", parent_commit=f"{i + 1:040x}", description="simulated",
                 benchmark=BenchmarkSpec(kind="latency", command="python benchmarks/benchmark_latency.py --model sim", gpus=gpus))
            for i in range(start, start + n)]


class SimAgent:
    def __init__(self) -> None:
        self.spec = NoopSpec(name="sim")

    def covers(self, task: Task) -> bool:
        return True

    def fingerprint(self, task: Task):
        return {"kind": "sim"}


def session(attempt: Attempt, task: Task, spec: AgentSpec, settings: Settings, *, scale: float):
    time.sleep(durations(attempt.id, scale).session)
    return Session(attempt_id=attempt.id, patch="--- simulated\n", files_changed=["x.py"], exit_status="done"), {}


def validate(attempt: Attempt, task: Task, session: Session, settings: Settings, *, scale: float):
    time.sleep(durations(attempt.id, scale).validation)
    return Validation(attempt_id=attempt.id, checks=[Check(name="apply", ok=True)]), {}


class SimBenchmark:
    """Sleeps for the benchmark's duration; B, H, A get fixed latencies so scoring has numbers."""

    def __init__(self, slot, settings: Settings, *, scale: float, dirty_gpu: int | None = None):
        self.slot, self.settings, self.scale = slot, settings, scale
        # a GPU that something outside the harness holds: every slot on it finds itself dirty
        self.dirty = dirty_gpu is not None and dirty_gpu in slot.gpu_ids

    def run(self, attempt: Attempt, task: Task, patch: str):
        if self.dirty:
            from isobench_ray.stages.benchmark import DirtySlot

            raise DirtySlot(f"slot {self.slot.name}: gpu{self.slot.gpu_ids} holds 20000 MiB (simulated)")
        time.sleep(durations(attempt.id, self.scale).benchmark)
        arms = [ArmResult(arm=arm, commit="sim", command=task.benchmark.command,
                          runs=[Run(arm=arm, round=r, metrics={"avg_latency": value}) for r in range(3)])
                for arm, value in (("baseline", 1.0), ("human", 0.5), ("agent", 0.8))]
        return Measurements(attempt_id=attempt.id, slot=self.slot.name, primary_metric="avg_latency", higher_is_better=False, arms=arms,
                            order=[["baseline", "human", "agent"]] * 3, stop_reason="simulated"), {}


def stages(scale: float, dirty_gpu: int | None = None) -> Stages:
    return Stages(session=partial(session, scale=scale), validate=partial(validate, scale=scale),
                  benchmark=partial(SimBenchmark, scale=scale, dirty_gpu=dirty_gpu), sandboxes=LocalSandboxes())
