"""Scheduling efficiency: 1,000 simulated attempts on 16 logical GPUs over 4 simulated nodes.

    .venv/bin/python benchmarks/scheduling.py [--attempts 1000] [--nodes 4] [--gpus-per-node 4] [--scale 0.2] [--repeats 3]

Stages sleep for durations drawn per attempt (isobench_ray/simulate.py: agent sessions of 2-30 minutes,
validation of under a minute, 3-way benchmarks of 3-8 minutes), `scale` seconds per simulated minute.
The real driver (isobench_ray/cluster/driver.py) schedules them on a ray.cluster_utils.Cluster. Prints,
for the median of `repeats` runs of the same plan:

- the efficiency: the ideal makespan (total benchmark work / GPUs) over the measured one;
- the same policy replayed from the same draws with no overhead at all (`replay`: sessions in plan order,
  `agent_concurrency` at once, each benchmark to the first free slot once its validation is done), and the
  driver's efficiency against that replay: what the driver itself loses, Ray's calls included;
- a lower bound that no scheduler beats once the sessions are done when the replay has them done
  (`release_bound`), since the ideal makespan ignores that no benchmark can start before an agent is done;
- where the slots' idle time went, in slot-seconds (`idle_time`): waiting for the first benchmark (the
  pipeline filling), between benchmarks (the driver's gap and Ray's round trip on the driver's clock,
  and waiting for a ready attempt), after the last (draining);

and the same ratio for a strictly sequential runner (one attempt after another, stage after stage: the sum
of all durations, computed from the same draws rather than waited for).
"""

from __future__ import annotations

import argparse
import heapq
import json
import statistics
import tempfile
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from isobench_ray.cluster import simulate
from isobench_ray.cluster.driver import Driver
from isobench_ray.config import Settings
from isobench_ray.pipeline import plan_attempts
from isobench_ray.store import RunStore


@ray.remote(num_cpus=1)
def _warm() -> None:
    import isobench_ray.cluster.simulate  # noqa: F401  (what the stage workers will import)

    time.sleep(2.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--gpus-per-node", type=int, default=4)
    parser.add_argument("--scale", type=float, default=0.2, help="seconds per simulated minute")
    parser.add_argument("--agent-concurrency", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3, help="runs of the same plan; the median is the figure")
    args = parser.parse_args()

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 4, "num_gpus": 0})
    for _ in range(args.nodes):
        cluster.add_node(num_cpus=args.gpus_per_node * 4, num_gpus=args.gpus_per_node)
    ray.init(address=cluster.address)
    gpus = args.nodes * args.gpus_per_node
    plan = plan_attempts(simulate.tasks(args.attempts), [simulate.SimAgent()])
    draws = [simulate.durations(a.id, args.scale) for a, _, _ in plan]
    bench_work = sum(d.benchmark for d in draws)
    sequential = sum(d.session + d.validation + d.benchmark for d in draws)
    ideal = bench_work / gpus
    replayed, bound = replay(draws, gpus, args.agent_concurrency), release_bound(draws, gpus, args.agent_concurrency)

    # Start the worker processes first: on a real cluster they start once and live for hours of agent
    # sessions; here 60 Python workers starting on 2 cores would dominate a 1-minute simulated run. The slot
    # actors are started once and handed from one repeat's driver to the next (as a long run keeps them).
    settings = Settings(agent_concurrency=args.agent_concurrency, work_dir=tempfile.mkdtemp(prefix="isobench-sched-"))
    warm_started = time.monotonic()
    ray.get([_warm.remote() for _ in range(args.agent_concurrency + gpus)])
    pool = None
    results = []
    for repeat in range(args.repeats):
        out = tempfile.mkdtemp(prefix="isobench-sched-")
        driver = Driver(RunStore(out, background_writes=True), plan, settings, stages=simulate.stages(args.scale), show_progress=False)
        if pool is None:
            driver.start_slots()
            pool = driver.slots
            print(f"worker pool and {len(pool.actors)} benchmark actors started before timing: "
                  f"{time.monotonic() - warm_started:.1f} s (not in the makespan)", flush=True)
        driver.slots = pool
        started = time.monotonic()
        driver.run()
        makespan = time.monotonic() - started
        spans = slot_spans(Path(out), args.scale)
        gaps = [later[0] - earlier[1] for runs in spans.values() for earlier, later in zip(runs, runs[1:])] or [0.0, 0.0]
        results.append(makespan)
        idle = idle_time(spans, started_at=driver.started, ended_at=driver.started + makespan)
        print(f"repeat {repeat + 1}: makespan {makespan:.1f} s, efficiency {ideal / makespan:.3f}, against the replay "
              f"{replayed / makespan:.3f}; {len(RunStore(out).records())} recorded; a slot's gap between one benchmark's result "
              f"and its next start: median {statistics.median(gaps) * 1000:.0f} ms, p90 {statistics.quantiles(gaps, n=10)[-1] * 1000:.0f} ms; "
              f"slots idle (slot-s): filling {idle['filling']:.1f}, between {idle['between']:.1f} (of which no attempt was "
              f"ready {idle['none_ready']:.1f}), draining {idle['draining']:.1f}; benchmarks took {idle['overrun']:.1f} slot-s "
              f"longer on the driver's clock than they slept (Ray's calls)", flush=True)
    ray.shutdown()
    cluster.shutdown()

    makespan = statistics.median(results)
    first_bench = min(d.session + d.validation for d in draws)
    print(f"{args.attempts} attempts, {gpus} logical GPUs on {args.nodes} nodes, "
          f"{args.scale} s per simulated minute, agent concurrency {args.agent_concurrency}")
    print(f"total benchmark work {bench_work:.1f} s -> ideal makespan {ideal:.1f} s "
          f"(no benchmark can start before the shortest session and validation, {first_bench:.1f} s)")
    print(f"pipelined Ray driver: median makespan of {args.repeats} {makespan:.1f} s, efficiency {ideal / makespan:.3f} "
          f"(each: {', '.join(f'{ideal / m:.3f}' for m in results)})")
    print(f"the same policy with no overhead (replay of the draws): makespan {replayed:.1f} s, efficiency {ideal / replayed:.3f}; "
          f"the driver against it: {replayed / makespan:.3f} (each: {', '.join(f'{replayed / m:.3f}' for m in results)})")
    print(f"no scheduler can finish before {bound:.1f} s once the sessions end when the replay ends them "
          f"(efficiency at most {ideal / bound:.3f})")
    print(f"sequential runner:    makespan {sequential:.1f} s, efficiency {ideal / sequential:.3f}")
    print(f"speed-up of the pipelined driver over the sequential runner: {sequential / makespan:.1f}x")


def replay(draws: list[simulate.Durations], gpus: int, concurrency: int) -> float:
    """The makespan of the driver's policy with no overhead: sessions in plan order, `concurrency` at once, a
    validation as soon as its session ends, each benchmark to the first free slot in the order they became ready."""
    slots = [0.0] * gpus
    makespan = 0.0
    for ready, benchmark in _ready_times(draws, concurrency):
        start = max(heapq.heappop(slots), ready)
        heapq.heappush(slots, start + benchmark)
        makespan = max(makespan, start + benchmark)
    return makespan


def release_bound(draws: list[simulate.Durations], gpus: int, concurrency: int) -> float:
    """A lower bound on any schedule's makespan given when each benchmark can start (the replay's session
    policy): the work ready at or after a time t cannot be done before t + work / gpus, even if benchmarks
    could be split across slots, nor can one benchmark end before it is ready plus its length."""
    bound, work = 0.0, 0.0
    for ready, benchmark in reversed(_ready_times(draws, concurrency)):
        work += benchmark
        bound = max(bound, ready + work / gpus, ready + benchmark)
    return bound


def _ready_times(draws: list[simulate.Durations], concurrency: int) -> list[tuple[float, float]]:
    places = [0.0] * concurrency  # when each of the `concurrency` session places frees
    ready = []
    for draw in draws:
        ends = heapq.heappop(places) + draw.session
        heapq.heappush(places, ends)
        ready.append((ends + draw.validation, draw.benchmark))
    return sorted(ready)


def slot_spans(out: Path, scale: float) -> dict[str, list[tuple[float, float, float, float]]]:
    """Per slot, its benchmarks in order: (submitted, returned) on the driver's clock (timings.jsonl), when
    the attempt's validation returned, and how long the benchmark slept (its draw)."""
    clock = {}
    for line in (out / "timings.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if len(entry.get("measurements", [])) == 2:
            clock[entry["attempt"]] = (*entry["measurements"], entry["validation"][1])
    by_slot: dict[str, list[tuple[float, float, float, float]]] = {}
    for record in RunStore(out).records():
        if record.measurements and record.attempt.id in clock:
            slept = simulate.durations(record.attempt.id, scale).benchmark
            by_slot.setdefault(record.measurements.slot, []).append((*clock[record.attempt.id], slept))
    return {slot: sorted(spans) for slot, spans in by_slot.items()}


def idle_time(spans: dict[str, list[tuple[float, float, float, float]]], started_at: float, ended_at: float) -> dict[str, float]:
    """Slot-seconds of the makespan in which slots ran no benchmark, by when: before their first, between two
    (`none_ready`: the part no attempt was ready to run), after their last; and `overrun`: how much longer
    the benchmarks took on the driver's clock than they slept."""
    idle = dict.fromkeys(("filling", "between", "none_ready", "draining", "overrun"), 0.0)
    for runs in spans.values():
        idle["filling"] += runs[0][0] - started_at
        idle["draining"] += ended_at - runs[-1][1]
        for (_, returned, _, _), (submitted, _, ready, _) in zip(runs, runs[1:]):
            idle["between"] += submitted - returned
            idle["none_ready"] += max(0.0, min(submitted, ready) - returned)
        idle["overrun"] += sum(returned - submitted - slept for submitted, returned, _, slept in runs)
    return idle

if __name__ == "__main__":
    main()
