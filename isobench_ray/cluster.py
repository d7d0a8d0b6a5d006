"""The Ray layer, and the only module that imports Ray: it schedules the stages; the stages know nothing of it.

- Agent sessions and validations are Ray tasks (CPU); at most `agent_concurrency` sessions at once.
- Benchmarks run on benchmark actors, each holding one slot: `num_gpus=1` where the cluster has GPUs,
  otherwise one actor pinned to each node with a CPU, because two CPU benchmarks side by side corrupt
  each other's timings.
- The driver pipelines attempts through the stages as results come back (a `ray.wait` loop, not an
  ActorPool: a timed-out actor must never be handed a second benchmark), writes every stage result to the
  run directory as it arrives, and retries what failed for transient reasons (a dead actor or node, an
  exception in a stage) a bounded number of times.
"""

from __future__ import annotations

import collections
import os
import time
import traceback
from typing import TYPE_CHECKING, Any, Callable

import ray
from ray.exceptions import RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from tqdm import tqdm

from isobench_ray.models import Attempt, AttemptRecord, FailureCause, Task
from isobench_ray.pipeline import infra_record, make_record, next_stage
from isobench_ray.sandbox import reap_tagged
from isobench_ray.settings import Settings
from isobench_ray.stages import BenchSlot, Stages
from isobench_ray.store import STAGE_FILES, RunStore

if TYPE_CHECKING:
    from isobench_ray.agents import Agent

MAX_TRIES = 3  # per attempt and stage, for transient failures


def connect(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None) -> None:
    """Join a cluster at `address` (or RAY_ADDRESS), or start a local one with logical resources."""
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_ACCEPT_ENV_VARS_FROM_HOST", "1")
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count(), num_gpus=num_gpus or 0, include_dashboard=False,
                 log_to_driver=True)


class BenchWorker:
    """A benchmark slot as a Ray actor: the GPU Ray gave it, or its node's CPU.

    Before its first benchmark it reaps whatever an earlier actor on the same slot left running (engine
    workers outlive a SIGKILL of their server and would hold the GPU)."""

    def __init__(self, settings: Settings, benchmark: Callable[..., Any]):
        gpu_ids = tuple(int(g) for g in ray.get_gpu_ids())
        # node IP for people, node id because simulated nodes on one machine share the IP
        node = f"{ray.util.get_node_ip_address()}/{ray.get_runtime_context().get_node_id()[:8]}"
        name = f"{node}/gpu{','.join(map(str, gpu_ids))}" if gpu_ids else f"{node}/cpu"
        reap_tagged(name, "ISOBENCH_SLOT")
        self.bench = benchmark(BenchSlot(name=name, gpu_ids=gpu_ids), settings)

    def __repr__(self) -> str:  # the dashboard's actor list and log prefixes show this
        return f"BenchSlot({self.bench.slot.name})"

    def run(self, attempt: Attempt, task: Task, patch: str):
        return self.bench.run(attempt, task, patch)


_BenchActor = ray.remote(num_cpus=1, max_restarts=0)(BenchWorker)


def _stage_task(fn: Callable[..., Any], name: str):
    def stage(*args):
        return fn(*args)

    stage.__name__ = stage.__qualname__ = name
    return ray.remote(num_cpus=1, max_retries=0)(stage)


class Driver:
    def __init__(self, store: RunStore, plan: list[tuple[Attempt, Task, "Agent"]], settings: Settings,
                 retry_failed: bool = False, show_progress: bool = True, stages: Stages | None = None):
        self.store, self.settings = store, settings
        self.stages = stages or Stages.real()
        self._session = _stage_task(self.stages.session, "session")
        self._validate = _stage_task(self.stages.validate, "validate")
        self.by_id = {a.id: (a, t, ag) for a, t, ag in plan}
        self.queue: collections.deque[str] = collections.deque()
        self.bench_queue: collections.deque[str] = collections.deque()
        self.in_flight: dict[Any, tuple[str, str, Any]] = {}
        self.tries: collections.Counter = collections.Counter()
        self.actors: dict[Any, str | None] = {}  # actor -> node id it is pinned to (CPU mode)
        self.idle: list[Any] = []
        self.counts: collections.Counter = collections.Counter()
        self.actor_serial = 0
        self._gpus: int | None = None
        self._status_written = 0.0
        self.delayed: list[tuple[float, str, str]] = []  # (retry at, attempt, stage) after a transient failure
        self.actor_node: dict[Any, str] = {}  # learnt from the slot name of each actor's first result
        self.node_commits: collections.defaultdict[str | None, set[str]] = collections.defaultdict(set)
        for attempt, _, _ in plan:
            store.save_attempt(attempt)
            if store.is_done(attempt.id, retry_failed):
                self.counts["done"] += 1
                continue
            record = store.load_stage(attempt.id, "record")
            if record is not None:
                # not done yet recorded: an infra error keeps its finished stages, --retry-failed redoes all
                infra = record.failure_cause is FailureCause.infra_error
                store.clear_attempt(attempt.id, ("record",) if infra else tuple(STAGE_FILES))
            self.queue.append(attempt.id)
        # One bar per stage (done/failed/running, ETA) and one for whole attempts, in the job's log.
        pending = collections.Counter(next_stage(store, aid) for aid in self.queue)
        needs = {"session": pending["session"], "validation": pending["session"] + pending["validation"],
                 "measurements": pending["session"] + pending["validation"] + pending["measurements"]}
        self.bars = {stage: tqdm(total=needs[stage], desc=f"{label:>15}", position=i, unit="attempt", leave=True,
                                 disable=not show_progress, dynamic_ncols=True)
                     for i, (stage, label) in enumerate([("session", "agent sessions"), ("validation", "validation"),
                                                         ("measurements", "3-way benchmarks")])}
        self.bar = tqdm(total=len(plan), initial=self.counts["done"], desc=f"{'attempts':>15}", position=3, unit="attempt",
                        disable=not show_progress, dynamic_ncols=True)
        self.stage_failed: collections.Counter = collections.Counter()

    # ------------------------------------------------------------ benchmark actors

    def _ensure_actors(self) -> None:
        alive = [n for n in ray.nodes() if n["Alive"]]
        gpus = int(sum(n["Resources"].get("GPU", 0) for n in alive))  # not cluster_resources(): it lags a dead node
        self._gpus = gpus
        if gpus:
            while len(self.actors) < gpus:
                self._new_actor(None, num_gpus=1)
            return
        nodes = [n for n in alive if n["Resources"].get("CPU", 0) >= 1]
        pinned = set(self.actors.values())
        for node in nodes:
            if node["NodeID"] not in pinned:
                self._new_actor(node["NodeID"], scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False))

    def start_slots(self) -> int:
        """Create the benchmark actors now and wait until each is up; returns how many."""
        self._ensure_actors()
        ray.get([actor.__ray_ready__.remote() for actor in self.actors])
        return len(self.actors)

    def _cpu_only(self) -> bool:
        if self._gpus is None:
            self._gpus = int(ray.cluster_resources().get("GPU", 0))
        return self._gpus == 0

    def _new_actor(self, node_id: str | None, **options) -> None:
        self.actor_serial += 1
        actor = _BenchActor.options(name=f"bench-slot-{self.actor_serial}-{os.getpid()}", **options).remote(
            self.settings, self.stages.benchmark)
        self.actors[actor] = node_id
        self.idle.append(actor)

    def _drop_actor(self, actor) -> None:
        self.actors.pop(actor, None)
        if actor in self.idle:
            self.idle.remove(actor)
        try:
            ray.kill(actor)
        except Exception:
            pass

    # ------------------------------------------------------------ stages

    def _advance(self, aid: str) -> None:
        stage = next_stage(self.store, aid)
        attempt, task, agent = self.by_id[aid]
        if stage == "record":
            self._finish(make_record(attempt, self.store, self.settings.hard_band_pct, self.settings.confidence))
        elif stage == "session":
            self.queue.append(aid)
        elif stage == "validation":
            ref = self._validate.options(name=f"validate:{aid}").remote(attempt, task, self.store.load_stage(aid, "session"), self.settings)
            self.in_flight[ref] = (aid, "validation", None)
        elif stage == "measurements":
            self.bench_queue.append(aid)

    def _finish(self, record: AttemptRecord) -> None:
        # an attempt that ended early will not need the later stages' bars
        stages = ["session", "validation", "measurements"]
        reached = stages.index(record.failure_stage) if record.failure_stage in ("session", "validation") else 2
        for later in stages[reached + 1:]:
            bar = self.bars[later]
            bar.total = max(bar.n, bar.total - 1)
            bar.refresh()
        self.store.save_stage(record.attempt.id, "record", record)
        self.counts["done"] += 1
        self.counts[record.status.value] += 1
        self.bar.update(1)
        self._status()

    def _status(self) -> None:
        running = collections.Counter(stage for _, stage, _ in self.in_flight.values())
        for stage, bar in self.bars.items():
            bar.set_postfix(running=running[stage], failed=self.stage_failed[stage],
                            **({"queued": len(self.bench_queue)} if stage == "measurements" else {}), refresh=False)
        self.bar.set_postfix(ok=self.counts["success"], failed=self.counts["failed"], error=self.counts["error"], refresh=False)
        if time.monotonic() - self._status_written < 1.0 and self.counts["done"] < len(self.by_id):
            return  # at most once a second: `isobench status` reads it, nobody needs it faster
        self._status_written = time.monotonic()
        self.store.write_json("status.json", {"total": len(self.by_id), **self.counts, "running": dict(running),
                                              "queued_for_benchmark": len(self.bench_queue), "updated": time.time()})

    def _dispatch(self) -> None:
        now = time.monotonic()
        for due in [d for d in self.delayed if d[0] <= now]:
            self.delayed.remove(due)
            _, aid, stage = due
            (self.bench_queue.append(aid) if stage == "measurements" else self._advance(aid))
        sessions = sum(1 for _, stage, _ in self.in_flight.values() if stage == "session")
        benchmarking = any(stage == "measurements" for _, stage, _ in self.in_flight.values())
        while self.queue and sessions < self.settings.agent_concurrency and not (benchmarking and self._cpu_only()):
            aid = self.queue.popleft()
            stage = next_stage(self.store, aid)
            if stage != "session":
                self._advance(aid)
                continue
            attempt, task, agent = self.by_id[aid]
            # an agent that runs its own GPU experiments asks for GPUs in its config
            ref = self._session.options(name=f"session:{aid}", num_gpus=agent.spec.gpus).remote(attempt, task, agent.spec, self.settings)
            self.in_flight[ref] = (aid, "session", None)
            sessions += 1
        if self.bench_queue and self._cpu_only():
            # A CPU benchmark shares the cores with every other stage: measure only when nothing else runs.
            if any(stage != "measurements" for _, stage, _ in self.in_flight.values()) or self.queue:
                return
        if self.bench_queue:
            self._ensure_actors()
        while self.bench_queue and self.idle:
            aid = self.bench_queue.popleft()
            attempt, task, _ = self.by_id[aid]
            actor = self._pick_actor(task)
            session = self.store.load_stage(aid, "session")
            self.in_flight[actor.run.remote(attempt, task, session.patch)] = (aid, "measurements", actor)

    def _pick_actor(self, task: Task):
        """An idle slot on a node that already holds this task's trees and mirror if there is one, else any."""
        warm = [a for a in self.idle if task.parent_commit in self.node_commits[self.actor_node.get(a)]]
        actor = (warm or self.idle)[0]
        self.idle.remove(actor)
        return actor

    def _failed(self, aid: str, stage: str, actor, error: BaseException) -> None:
        if actor is not None:
            self._drop_actor(actor)  # never trust an actor whose call failed: its slot may hold leftovers
        self.tries[(aid, stage)] += 1
        if self.tries[(aid, stage)] < MAX_TRIES:
            # back off before the retry without stalling the loop: other results keep flowing
            self.delayed.append((time.monotonic() + min(2 ** self.tries[(aid, stage)], 10), aid, stage))
        else:
            attempt = self.by_id[aid][0]
            self._finish(infra_record(attempt, self.store, stage, "".join(traceback.format_exception(error))))

    def run(self) -> None:
        for aid in list(self.queue):
            self.queue.remove(aid)
            self._advance(aid)
        if any(next_stage(self.store, aid) in ("session", "validation", "measurements") for aid in self.by_id
               if not self.store.is_done(aid)):
            # Benchmark actors first: created later they would wait for CPUs that agent sessions hold.
            self._ensure_actors()
        try:
            while self.queue or self.bench_queue or self.in_flight or self.delayed:
                self._dispatch()
                if not self.in_flight:
                    time.sleep(0.5)  # waiting for a benchmark actor to come up
                    continue
                refs = list(self.in_flight)
                ready, _ = ray.wait(refs, num_returns=1, timeout=1.0)
                if ready:  # take everything that is done, not one per loop
                    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
                for ref in ready:
                    aid, stage, actor = self.in_flight.pop(ref)
                    try:
                        model, logs = ray.get(ref)
                    except (RayError, Exception) as exc:  # a dead node/actor or an exception in the stage
                        self._failed(aid, stage, actor, exc)
                        continue
                    if actor is not None:
                        self.idle.append(actor)
                        node = model.slot.rsplit("/", 1)[0]  # "<ip>/<node id>/gpuN" -> the node
                        self.actor_node[actor] = node
                        self.node_commits[node].add(self.by_id[aid][1].parent_commit)
                    self.store.save_stage(aid, stage, model, logs)
                    self.bars[stage].update(1)
                    if getattr(model, "failure_cause", None) or any(getattr(a, "failure_cause", None) for a in getattr(model, "arms", [])):
                        self.stage_failed[stage] += 1
                    self._advance(aid)
                self._status()
        finally:
            for ref, (_, _, actor) in self.in_flight.items():
                try:
                    ray.cancel(ref, force=actor is None)  # actor tasks cannot be force-cancelled
                except Exception:
                    pass
            for bar in [*self.bars.values(), self.bar]:
                bar.close()
            self.store.flush()
