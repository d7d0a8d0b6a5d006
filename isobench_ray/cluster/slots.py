"""Benchmark slots as Ray actors, and the pool the driver hands benchmarks to.

Each actor holds one slot: `num_gpus=1` where the cluster has GPUs (`num_gpus=N` for tasks that need N on
one node, tensor parallelism: the pool is reshaped for them once no smaller work waits), otherwise one
actor pinned to each node with a CPU, because two CPU benchmarks side by side corrupt each other's timings. Before its first
benchmark an actor reaps whatever an earlier actor on the same slot left running (engine workers outlive a
SIGKILL of their server and would hold the GPU).
"""

from __future__ import annotations

import collections
import os
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from isobench_ray.config import Settings
from isobench_ray.hardware import Gpus, host_cores
from isobench_ray.schema import Attempt, BenchSlot, Task
from isobench_ray.stages import Stages


def this_node_gpus() -> int:
    """GPUs of the node this worker runs on, as Ray counts them."""
    node_id = ray.get_runtime_context().get_node_id()
    return int(next((n["Resources"].get("GPU", 0) for n in ray.nodes() if n["NodeID"] == node_id), 0))


class BenchWorker:
    """A benchmark slot: the GPU Ray gave this actor, or its node's CPU."""

    def __init__(self, settings: Settings, stages: Stages):
        gpu_ids = tuple(int(g) for g in ray.get_gpu_ids())
        # node IP for people, node id because simulated nodes on one machine share the IP
        node = f"{ray.util.get_node_ip_address()}/{ray.get_runtime_context().get_node_id()[:8]}"
        name = f"{node}/gpu{','.join(map(str, gpu_ids))}" if gpu_ids else f"{node}/cpu"
        stages.sandboxes.reap("ISOBENCH_SLOT", name)
        node_gpus = this_node_gpus()
        cpus = Gpus(gpu_ids).slot_cores(node_gpus, exclude=host_cores(node_gpus, settings.slots.host_cores))
        self.bench = stages.benchmark(BenchSlot(name=name, gpu_ids=gpu_ids, cpus=cpus), settings)

    def __repr__(self) -> str:  # the dashboard's actor list and log prefixes show this
        slot = self.bench.slot
        return f"BenchSlot({slot.name}, cpus {','.join(map(str, slot.cpus))})"

    def slot_name(self) -> str:
        return self.bench.slot.name

    def run(self, attempt: Attempt, task: Task, patch: str):
        return self.bench.run(attempt, task, patch)


_BenchActor = ray.remote(num_cpus=1, max_restarts=0)(BenchWorker)


class SlotPool:
    def __init__(self, settings: Settings, stages: Stages):
        self.settings, self.stages = settings, stages
        self.actors: dict[Any, str | None] = {}  # actor -> node id it is pinned to (CPU mode)
        self.size: dict[Any, int] = {}  # actor -> GPUs it holds (GPU mode)
        self.node_gpus: list[int] = []  # GPUs of each alive node, at the last ensure()
        self.idle: list[Any] = []
        # Only an actor that is up gets work: one created while a dead node still counted may never be
        # placed, and a benchmark handed to it would wait forever.
        self.ready: set[Any] = set()
        self.slot_of: dict[Any, str] = {}  # actor -> its slot's name, once it is up
        self._starting: dict[Any, Any] = {}  # slot_name() ref -> actor
        self.serial = 0
        self._gpus: int | None = None
        self.actor_node: dict[Any, str] = {}  # learnt from the slot name of each actor's first result
        self.node_commits: collections.defaultdict[str | None, set[str]] = collections.defaultdict(set)

    def ensure(self, sizes: set[int] | frozenset[int] = frozenset()) -> None:
        """One actor per GPU of the alive nodes (per N GPUs on one node, when the benchmarks waiting, of
        `sizes` GPUs each, all need N), or one per alive CPU node; surplus actors that are not up (created
        while a dead node still counted) and idle actors of a size nothing waits for are dropped."""
        self.poll_ready()
        alive = [n for n in ray.nodes() if n["Alive"]]
        self.node_gpus = [int(n["Resources"].get("GPU", 0)) for n in alive]
        gpus = sum(self.node_gpus)  # not cluster_resources(): it lags a dead node
        self._gpus = gpus
        if gpus:
            wanted = min(sizes) if sizes else 1  # the smallest first: most tasks need one GPU
            for actor in [a for a in self.idle if self.size.get(a) != wanted and self.size.get(a) not in sizes]:
                self.drop(actor)
            capacity = sum(n // wanted for n in self.node_gpus)
            same = [a for a in self.actors if self.size.get(a) == wanted]
            for actor in [a for a in same if a not in self.ready][: max(0, len(same) - capacity)]:
                self.drop(actor)
                same.remove(actor)
            for _ in range(capacity - len(same)):
                self._new(None, size=wanted, num_gpus=wanted)
            return
        pinned = set(self.actors.values())
        for node in alive:
            if node["Resources"].get("CPU", 0) >= 1 and node["NodeID"] not in pinned:
                self._new(node["NodeID"], scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False))

    def start(self) -> int:
        """Create the actors now and wait until each is up; returns how many."""
        self.ensure()
        ray.wait(list(self._starting), num_returns=len(self._starting))
        self.poll_ready()
        return len(self.actors)

    def poll_ready(self) -> None:
        if not self._starting:
            return
        done, _ = ray.wait(list(self._starting), num_returns=len(self._starting), timeout=0)
        for ref in done:
            actor = self._starting.pop(ref)
            try:
                self.slot_of[actor] = ray.get(ref)
                self.ready.add(actor)
            except Exception:  # it died starting (its node went): a new one replaces it
                self.drop(actor)

    def cpu_only(self) -> bool:
        if self._gpus is None:
            self._gpus = int(ray.cluster_resources().get("GPU", 0))
        return self._gpus == 0

    def max_node_gpus(self) -> int:
        return max(self.node_gpus, default=0)

    def _new(self, node_id: str | None, size: int = 1, **options) -> None:
        self.serial += 1
        actor = _BenchActor.options(name=f"bench-slot-{self.serial}-{os.getpid()}", **options).remote(self.settings, self.stages)
        self.actors[actor] = node_id
        self.size[actor] = size
        self.idle.append(actor)
        self._starting[actor.slot_name.remote()] = actor

    def drop(self, actor) -> None:
        """Never trust an actor whose call failed: its slot may hold leftovers; a new one reaps them."""
        self.actors.pop(actor, None)
        self.size.pop(actor, None)
        self.ready.discard(actor)
        self._starting = {ref: a for ref, a in self._starting.items() if a is not actor}
        if actor in self.idle:
            self.idle.remove(actor)
        try:
            ray.kill(actor)
        except Exception:
            pass

    def pick(self, task: Task, avoid: set[str] = frozenset()):
        """An idle slot that is up, on a node that already holds this task's trees and mirror if there is
        one, else any; never one in `avoid` (slots this attempt failed on) while another slot exists to
        wait for; None when no slot is free."""
        up = [a for a in self.idle if a in self.ready]
        if self._gpus:  # GPU mode (known from the last ensure): a slot of exactly the GPUs the task needs
            up = [a for a in up if self.size.get(a, 1) == task.benchmark.gpus]
        others = [a for a in up if self.slot_of.get(a) not in avoid]
        if others or any(self.slot_of.get(a) not in avoid for a in self.actors):
            up = others
        warm = [a for a in up if task.parent_commit in self.node_commits[self.actor_node.get(a)]]
        if not up:
            return None
        actor = (warm or up)[0]
        self.idle.remove(actor)
        return actor

    def release(self, actor, slot_name: str, task: Task) -> None:
        self.idle.append(actor)
        node = slot_name.rsplit("/", 1)[0]  # "<ip>/<node id>/gpuN" -> the node
        self.actor_node[actor] = node
        self.node_commits[node].add(task.parent_commit)
