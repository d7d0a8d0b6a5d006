"""The stage functions the cluster layer schedules, as one value: real by default, swappable as a whole."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from isobench_ray.benchmark import ThreeWayBenchmark
from isobench_ray.session import run_session
from isobench_ray.validation import validate


@dataclass(frozen=True)
class Stages:
    session: Callable[..., Any] = run_session  # (attempt, task, agent spec, settings) -> (Session, logs)
    validate: Callable[..., Any] = validate  # (attempt, task, session, settings) -> (Validation, logs)
    benchmark: Callable[..., Any] = ThreeWayBenchmark  # (slot, settings) -> object with run(attempt, task, patch)
