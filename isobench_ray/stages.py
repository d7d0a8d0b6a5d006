"""The stage functions the cluster layer schedules, as one value: real by default, swappable as a whole."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class BenchSlot:
    """One benchmark slot: a GPU (or, without GPUs, a whole node's CPU) that runs one arm at a time."""

    name: str
    gpu_ids: tuple[int, ...] = ()

    @property
    def env(self) -> dict[str, str]:
        # ISOBENCH_SLOT marks every process of this slot, so a later actor on it can reap leftovers.
        env = {"ISOBENCH_SLOT": self.name}
        if self.gpu_ids:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, self.gpu_ids))
        return env


@dataclass(frozen=True)
class Stages:
    session: Callable[..., Any]  # (attempt, task, agent spec, settings) -> (Session, logs)
    validate: Callable[..., Any]  # (attempt, task, session, settings) -> (Validation, logs)
    benchmark: Callable[..., Any]  # (slot, settings) -> object with run(attempt, task, patch) -> (Measurements, logs)

    @classmethod
    def real(cls) -> "Stages":
        # imported here: a worker that runs simulated stages need not load git, scipy and the rest
        from isobench_ray.benchmark import ThreeWayBenchmark
        from isobench_ray.session import run_session
        from isobench_ray.validation import validate

        return cls(session=run_session, validate=validate, benchmark=ThreeWayBenchmark)
