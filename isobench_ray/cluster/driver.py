"""The scheduling loop: pipelines attempts through the stages as results come back.

- Agent sessions and validations are Ray tasks (CPU); at most `agent_concurrency` sessions at once.
- Benchmarks go to the slot pool (slots.py); a `ray.wait` loop, not an ActorPool, so a timed-out actor is
  never handed a second benchmark.
- Every stage result is written to the run directory as it arrives, so a stopped run resumes where it
  stopped; failures follow the policy in policy.py; progress.py shows where things are.
- Per event the loop does O(1) work besides Ray's own `ray.wait` (counters, not scans, of what runs; the
  benchmark queue taken from its head), freed slots get their next benchmark before the finished attempt
  is scored, and nothing per attempt stays in memory after its record is written (the plan aside).
"""

from __future__ import annotations

import collections
import os
import sys
import time
from typing import TYPE_CHECKING, Any, Callable

import ray

from isobench_ray.cluster.policy import RetryPolicy, describe, stage_error
from isobench_ray.cluster.progress import Progress
from isobench_ray.cluster.slots import SlotPool, this_node_gpus
from isobench_ray.config import Settings
from isobench_ray.hardware import host_cores
from isobench_ray.pipeline import error_record, make_record, next_stage
from isobench_ray.schema import Attempt, AttemptRecord, FailureCause, Task
from isobench_ray.stages import Stages
from isobench_ray.store import STAGE_FILES, RunStore

if TYPE_CHECKING:
    from isobench_ray.agents import Agent

SKIP_AT_MOST = 64  # queued benchmarks passed over per line and dispatch when no idle slot suits them


class BenchQueue:
    """Benchmarks waiting for a slot: one first-in-first-out line per number of GPUs they need, so that a long
    line of multi-GPU benchmarks never stands in front of one-GPU ones (the pool serves one size at a time)."""

    def __init__(self) -> None:
        self.lines: dict[int, collections.deque[str]] = {}

    def append(self, aid: str, gpus: int) -> None:
        self.lines.setdefault(gpus, collections.deque()).append(aid)

    def popleft(self, gpus: int) -> str | None:
        line = self.lines.get(gpus)
        return line.popleft() if line else None

    def putback(self, gpus: int, aids: list[str]) -> None:
        """`aids`, taken from the head of the line in this order, back at its head in the same order."""
        self.lines[gpus].extendleft(reversed(aids))

    def sizes(self) -> list[int]:
        return sorted(gpus for gpus, line in self.lines.items() if line)

    def __len__(self) -> int:  # a line per GPU count: a handful at most
        return sum(map(len, self.lines.values()))

    def __iter__(self):
        return (aid for gpus in sorted(self.lines) for aid in self.lines[gpus])


def connect(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None) -> None:
    """Join a cluster at `address` (or RAY_ADDRESS; `auto`: the one running on this machine), or else start a
    local instance of our own with logical resources, even when another Ray runs on this machine (never
    joined by surprise: its resources are not ours to size)."""
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_ACCEPT_ENV_VARS_FROM_HOST", "1")
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        if num_cpus or num_gpus:
            print(f"isobench: joining the cluster at {address}: --num-cpus/--num-gpus apply only to a new local "
                  f"instance and are ignored", file=sys.stderr)
        ray.init(address=address, log_to_driver=True)
    else:
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), num_gpus=num_gpus or 0,
                 include_dashboard=False, log_to_driver=True)


def _stage_task(fn: Callable[..., Any], name: str):
    def stage(*args):
        # on a GPU node, sessions and validations run on the node's host cores, never a slot's: the worker
        # is pinned for the stage (its commands inherit it, containers get it as their cpuset), then let go
        settings = next((a for a in args if isinstance(a, Settings)), None)
        keep = host_cores(this_node_gpus(), settings.slots.host_cores) if settings and settings.slots.host_cores else ()
        before = os.sched_getaffinity(0)
        if keep:
            os.sched_setaffinity(0, keep)
        try:
            return fn(*args)
        finally:
            if keep:
                os.sched_setaffinity(0, before)

    stage.__name__ = stage.__qualname__ = name
    return ray.remote(num_cpus=1, max_retries=0)(stage)


class Driver:
    def __init__(self, store: RunStore, plan: list[tuple[Attempt, Task, "Agent"]], settings: Settings,
                 retry_failed: bool = False, show_progress: bool = True, stages: Stages | None = None,
                 on_record: Callable[[AttemptRecord], None] | None = None, unavailable: dict[str, str] | None = None):
        self.store, self.settings = store, settings
        # attempts whose images cannot be had (environments.missing_images): error/image_missing at once
        self.unavailable = unavailable or {}
        self.on_record = on_record  # the judges, on the driver, as attempts finish
        self.stages = stages or Stages.real(settings)
        self._session = _stage_task(self.stages.session, "session")
        self._validate = _stage_task(self.stages.validate, "validate")
        self.slots = SlotPool(settings, self.stages)
        self.policy = RetryPolicy()
        self.avoid: dict[str, set[str]] = {}  # attempt -> slots it failed on
        self._slots_checked = 0.0
        self.by_id = {a.id: (a, t, ag) for a, t, ag in plan}
        self.queue: collections.deque[str] = collections.deque()
        self.bench_queue = BenchQueue()
        self.in_flight: dict[Any, tuple[str, str, Any]] = {}
        self.running: collections.Counter[str] = collections.Counter()  # stage -> in flight, kept, never counted
        self.waits = 0
        # driver-side clock per attempt and stage (submitted, returned), for benchmarks/overhead.py: a line of
        # timings.jsonl once the attempt's record is written, then forgotten
        self.timings: collections.defaultdict[str, dict[str, list[float]]] = collections.defaultdict(dict)
        done = 0
        for attempt, _, _ in plan:
            store.save_attempt(attempt)
            if store.is_done(attempt.id, retry_failed):
                done += 1
                continue
            # only an attempt the index knows has a record to look at (never one that did not run: at 100k attempts
            # a file opened per attempt is what resume would cost)
            record = store.load_stage(attempt.id, "record") if attempt.id in store.finished() else None
            if record is not None:
                # not done yet recorded: an infra error keeps its finished stages, --retry-failed redoes all
                infra = record.failure_cause is FailureCause.infra_error
                store.clear_attempt(attempt.id, ("record",) if infra else tuple(STAGE_FILES))
            self.queue.append(attempt.id)
        pending = collections.Counter(next_stage(store, aid) for aid in self.queue)
        self.progress = Progress(len(plan), done, pending, lambda data: store.write_json("status.json", data), show_progress)

    # ------------------------------------------------------------ stages

    def _advance(self, aid: str) -> None:
        stage = next_stage(self.store, aid)
        attempt, task, agent = self.by_id[aid]
        if stage == "record":
            self._finish(make_record(attempt, self.store, self.settings))
        elif stage == "session":
            self.queue.append(aid)
        elif stage == "validation":
            ref = self._validate.options(name=f"validate:{aid}").remote(attempt, task, self.store.load_stage(aid, "session"), self.settings)
            self._submit(ref, aid, "validation")
        elif stage == "measurements":
            self.bench_queue.append(aid, task.benchmark.gpus)

    def _submit(self, ref, aid: str, stage: str, actor=None) -> None:
        self.in_flight[ref] = (aid, stage, actor)
        self.running[stage] += 1
        self.timings[aid][stage] = [time.time()]

    def _finish(self, record: AttemptRecord) -> None:
        aid, started = record.attempt.id, time.time()
        self.store.save_stage(aid, "record", record)
        clock = self.timings.pop(aid, {})
        clock["record"] = [started, time.time()]
        self.store.append_jsonl("timings.jsonl", {"attempt": aid, **clock})
        self.avoid.pop(aid, None)
        self.progress.attempt_done(record.status.value, record.failure_stage)
        if self.on_record is not None:
            self.on_record(record)
        self._show()

    def _show(self) -> None:
        self.progress.show(self.running, len(self.bench_queue))

    def _dispatch(self) -> None:
        for aid, stage in self.policy.due():
            (self.bench_queue.append(aid, self.by_id[aid][1].benchmark.gpus) if stage == "measurements" else self._advance(aid))
        sessions = self.running["session"]
        benchmarking = self.running["measurements"] > 0
        while self.queue and sessions < self.settings.schedule.agent_concurrency and not (benchmarking and self.slots.cpu_only()):
            aid = self.queue.popleft()
            if next_stage(self.store, aid) != "session":
                self._advance(aid)
                continue
            attempt, task, agent = self.by_id[aid]
            # an agent that runs its own GPU experiments asks for GPUs in its config
            ref = self._session.options(name=f"session:{aid}", num_gpus=agent.spec.gpus).remote(attempt, task, agent.spec, self.settings)
            self._submit(ref, aid, "session")
            sessions += 1
        if self.bench_queue and self.slots.cpu_only():
            # A CPU benchmark shares the cores with every other stage: measure only when nothing else runs.
            if self.running["session"] + self.running["validation"] or self.queue:
                return
        if self.bench_queue or self.running["measurements"]:
            self._ensure_slots()
        self._dispatch_benchmarks()

    def _dispatch_benchmarks(self) -> None:
        """Benchmarks to idle slots from the head of each size's line. One that no idle slot suits (the slots
        it failed on) keeps its place, at most SKIP_AT_MOST passed over per line and call, so a long line is
        never walked whole for every event; a line with no idle slot of its size at all is not walked."""
        for gpus in self.bench_queue.sizes():
            skipped: list[str] = []
            while self.slots.idle and len(skipped) < SKIP_AT_MOST and (aid := self.bench_queue.popleft(gpus)) is not None:
                attempt, task, _ = self.by_id[aid]
                if not self.slots.cpu_only() and task.benchmark.gpus > self.slots.max_node_gpus() > 0:
                    self._finish(error_record(attempt, self.store, "benchmark", FailureCause.no_slot,
                                              f"the task needs {task.benchmark.gpus} GPUs on one node; the largest node "
                                              f"alive has {self.slots.max_node_gpus()}"))
                    continue
                avoid = self.avoid.get(aid, set())
                actor = self.slots.pick(task, avoid)
                if actor is None:
                    skipped.append(aid)
                    if not avoid:  # no idle slot of this size at all: the rest of the line waits too
                        break
                    continue
                session = self.store.load_stage(aid, "session")
                self._submit(actor.run.remote(attempt, task, session.patch), aid, "measurements", actor)
            self.bench_queue.putback(gpus, skipped)

    def _ensure_slots(self) -> None:
        # at most once a second: it asks the GCS for the alive nodes
        if time.monotonic() - self._slots_checked >= 1.0:
            self._slots_checked = time.monotonic()
            self.slots.ensure(set(self.bench_queue.sizes()))
        else:
            self.slots.poll_ready()

    def _failed(self, aid: str, stage: str, actor, error: BaseException) -> None:
        attempt = self.by_id[aid][0]
        known = stage_error(error)
        if known is not None:  # the task's or the machine's, deterministic: once, as an error
            if actor is not None:
                self.slots.idle.append(actor)  # the stage cleaned up after itself
            self._finish(error_record(attempt, self.store, stage, known.failure_cause, known.detail))
            return
        if actor is not None:
            self.avoid.setdefault(aid, set()).add(self.slots.slot_of.get(actor, ""))  # its retry goes to another slot
            self.slots.drop(actor)
        if not self.policy.failed(aid, stage):
            self._finish(error_record(attempt, self.store, stage, FailureCause.infra_error, describe(error)))

    def _collect(self, refs: list) -> None:
        """Every ready result saved and its slot freed, the freed slots handed their next benchmarks, and only
        then the finished attempts scored and recorded (a slot does not wait on another attempt's scores)."""
        advance = []
        for ref in refs:
            aid, stage, actor = self.in_flight.pop(ref)
            self.running[stage] -= 1
            self.timings[aid][stage].append(time.time())
            try:
                model, logs = ray.get(ref)
            except Exception as exc:  # a dead node/actor, or an exception in the stage
                self._failed(aid, stage, actor, exc)
                continue
            if actor is not None:
                self.slots.release(actor, model.slot, self.by_id[aid][1])
            self.store.save_stage(aid, stage, model, logs)
            failed = bool(getattr(model, "failure_cause", None) or any(a.failure_cause for a in getattr(model, "arms", [])))
            self.progress.stage_done(stage, failed)
            advance.append(aid)
        if self.bench_queue and self.slots.idle and not self.slots.cpu_only():
            self._dispatch_benchmarks()
        for aid in advance:
            self._advance(aid)

    def start_slots(self) -> int:
        return self.slots.start()

    def run(self) -> None:
        self.started = time.time()
        for aid in list(self.queue):
            self.queue.remove(aid)
            if aid in self.unavailable and next_stage(self.store, aid) == "session":
                self._finish(error_record(self.by_id[aid][0], self.store, "plan", FailureCause.image_missing,
                                          self.unavailable[aid]))
                continue
            self._advance(aid)
        if self.queue or self.bench_queue or self.in_flight:
            # Benchmark actors first: created later they would wait for CPUs that agent sessions hold.
            self.slots.ensure()
        try:
            while self.queue or self.bench_queue or self.in_flight or self.policy.delayed:
                self._dispatch()
                if not self.in_flight:
                    time.sleep(0.5)  # waiting for a benchmark actor to come up, or a retry's backoff
                    continue
                refs = list(self.in_flight)
                self.waits += 1  # benchmarks/scale.py: Ray's wait is the part of an event that grows with the slots
                ready, _ = ray.wait(refs, num_returns=1, timeout=1.0)
                if ready:  # take everything that is done, not one per loop
                    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
                self._collect(ready)
                self._show()
        finally:
            for ref, (_, _, actor) in self.in_flight.items():
                try:
                    ray.cancel(ref, force=actor is None)  # actor tasks cannot be force-cancelled
                except Exception:
                    pass
            self.progress.close()
            self.store.write_json("timings.json", {"driver_started": self.started})
            self.store.flush()
