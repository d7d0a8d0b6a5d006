"""Scheduling efficiency: 1,000 simulated attempts on 16 logical GPUs over 4 simulated nodes.

    .venv/bin/python benchmarks/scheduling.py [--attempts 1000] [--nodes 4] [--gpus-per-node 4] [--scale 0.2] [--repeats 3]

Stages sleep for durations drawn per attempt (isobench_ray/simulate.py: agent sessions of 2-30 minutes,
validation of under a minute, 3-way benchmarks of 3-8 minutes), `scale` seconds per simulated minute.
The real driver (isobench_ray/cluster.py) schedules them on a ray.cluster_utils.Cluster. Prints the
makespan against the ideal (total benchmark work / GPUs) as an efficiency ratio, the median of `repeats`
runs of the same plan (with each slot's idle gap between benchmarks), and the same ratio for a
strictly sequential runner (one attempt after another, stage after stage: the sum of all durations,
computed from the same draws rather than waited for).
"""

from __future__ import annotations

import argparse
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
        gaps = slot_gaps(Path(out))
        results.append(makespan)
        print(f"repeat {repeat + 1}: makespan {makespan:.1f} s, efficiency {ideal / makespan:.3f}; "
              f"{len(RunStore(out).records())} recorded; a slot's gap between one benchmark's result and its next "
              f"start: median {statistics.median(gaps) * 1000:.0f} ms, p90 {statistics.quantiles(gaps, n=10)[-1] * 1000:.0f} ms",
              flush=True)
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
    print(f"sequential runner:    makespan {sequential:.1f} s, efficiency {ideal / sequential:.3f}")
    print(f"speed-up of the pipelined driver over the sequential runner: {sequential / makespan:.1f}x")


def slot_gaps(out: Path) -> list[float]:
    """Seconds each slot stood idle between returning a benchmark's result to the driver and being handed its
    next one, from the driver's clock (timings.jsonl) and the slot each benchmark ran on (its record)."""
    clock = {}
    for line in (out / "timings.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if len(entry.get("measurements", [])) == 2:
            clock[entry["attempt"]] = entry["measurements"]
    by_slot: dict[str, list[list[float]]] = {}
    for record in RunStore(out).records():
        if record.measurements and record.attempt.id in clock:
            by_slot.setdefault(record.measurements.slot, []).append(clock[record.attempt.id])
    gaps = []
    for spans in by_slot.values():
        spans.sort()
        gaps += [later[0] - earlier[1] for earlier, later in zip(spans, spans[1:])]
    return gaps or [0.0, 0.0]


if __name__ == "__main__":
    main()
