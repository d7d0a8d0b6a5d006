"""The attempt state machine, without Ray: what to plan, which stage comes next, and the final record.

Stages in order: session -> validation -> measurements -> record. A stage that ends in a failure cause
ends the attempt (a patch that does not apply is not benchmarked); the record is assembled from the stored
stage outputs, so resuming is nothing more than asking `next_stage` again.
"""

from __future__ import annotations

from isobench_ray.agents import Agent
from isobench_ray.config import Settings
from isobench_ray.schema import Attempt, AttemptRecord, FailureCause, Measurements, Session, Status, Task, Validation
from isobench_ray.scoring.hard import outcome, score
from isobench_ray.store import RunStore


def plan_attempts(tasks: list[Task], agents: list[Agent], rollouts: int = 1) -> list[tuple[Attempt, Task, Agent]]:
    """tasks x agents x rollouts, skipping pairs an agent does not cover (a replay without that prediction)."""
    plan = []
    for task in tasks:
        for agent in agents:
            if not agent.covers(task):
                continue
            for rollout in range(rollouts):
                attempt = Attempt.make(task, agent.spec, rollout, agent.fingerprint(task))
                plan.append((attempt, task, agent))
    return plan


def next_stage(store: RunStore, attempt_id: str) -> str:
    session = store.load_stage(attempt_id, "session")
    if session is None:
        return "session"
    if session.failure_cause:
        return "record"
    validation = store.load_stage(attempt_id, "validation")
    if validation is None:
        return "validation"
    if not validation.ok:
        return "record"
    if store.load_stage(attempt_id, "measurements") is None:
        return "measurements"
    return "record"


def make_record(attempt: Attempt, store: RunStore, settings: Settings) -> AttemptRecord:
    """The attempt's final record from its stages' files, scored under the run's measurement settings."""
    session: Session | None = store.load_stage(attempt.id, "session")
    validation: Validation | None = store.load_stage(attempt.id, "validation")
    measurements: Measurements | None = store.load_stage(attempt.id, "measurements")
    fields = dict(attempt=attempt, session=session, validation=validation, measurements=measurements)
    if session and session.failure_cause:
        return AttemptRecord(**fields, status=Status.failed, failure_cause=session.failure_cause,
                             failure_stage="session", detail=session.detail)
    if validation and not validation.ok:
        failed = next((c for c in validation.checks if not c.ok), None)
        return AttemptRecord(**fields, status=Status.failed, failure_cause=validation.failure_cause,
                             failure_stage="validation", detail=failed.detail if failed else "")
    assert measurements is not None, f"{attempt.id}: record asked for before the benchmark"
    m = settings.measurement
    scores = score(measurements, m.hard_band_pct, m.confidence, m.min_samples, settings.correctness.accuracy_drop_max,
                   method=m.interval_method, implausible_speedup=m.implausible_speedup)
    store.save_stage(attempt.id, "scores", scores)
    status, cause, detail = outcome(measurements)
    return AttemptRecord(**fields, scores=scores, status=status, failure_cause=cause,
                         failure_stage="benchmark" if cause else None, detail=detail)


def error_record(attempt: Attempt, store: RunStore, stage: str, cause: FailureCause, detail: str) -> AttemptRecord:
    """The task or the machine failed, not the agent: recorded so the report says so. An `infra_error`
    is redone on the next run; any other cause only with --retry-failed."""
    return AttemptRecord(attempt=attempt, status=Status.error, failure_cause=cause, failure_stage=stage,
                         detail=detail[-4000:] if cause is not FailureCause.infra_error else detail[:4000],
                         session=store.load_stage(attempt.id, "session"),
                         validation=store.load_stage(attempt.id, "validation"))
