"""The stage functions the cluster layer schedules, as one value: real by default, swappable as a whole.

Each stage gets plain values (attempt, task, spec or patch, settings) and the run's sandbox factory; it
returns a boundary model and its logs. None of them knows Ray.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

from isobench_ray.config import Settings
from isobench_ray.sandbox.base import SandboxFactory


@dataclass(frozen=True)
class Stages:
    session: Callable[..., Any]  # (attempt, task, agent spec, settings) -> (Session, logs)
    validate: Callable[..., Any]  # (attempt, task, session, settings) -> (Validation, logs)
    benchmark: Callable[..., Any]  # (slot, settings) -> object with run(attempt, task, patch) -> (Measurements, logs)
    sandboxes: SandboxFactory  # also reaps a dead slot's leftovers

    @classmethod
    def real(cls, settings: Settings) -> "Stages":
        # imported here: a worker that runs simulated stages need not load git, scipy and the rest
        from isobench_ray.sandbox import make_sandboxes
        from isobench_ray.stages.benchmark import ThreeWayBenchmark
        from isobench_ray.stages.session import run_session
        from isobench_ray.stages.validation import validate

        sandboxes = make_sandboxes(settings)
        return cls(session=partial(run_session, sandboxes=sandboxes), validate=partial(validate, sandboxes=sandboxes),
                   benchmark=partial(ThreeWayBenchmark, sandboxes=sandboxes), sandboxes=sandboxes)
