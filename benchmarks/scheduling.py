"""Scheduling efficiency: 1,000 simulated attempts on 16 logical GPUs over 4 simulated nodes.

    .venv/bin/python benchmarks/scheduling.py [--attempts 1000] [--nodes 4] [--gpus-per-node 4] [--scale 0.02]

Stages sleep for durations drawn per attempt (isobench_ray/simulate.py: agent sessions of 2-30 minutes,
validation of under a minute, 3-way benchmarks of 3-8 minutes), `scale` seconds per simulated minute.
The real driver (isobench_ray/cluster.py) schedules them on a ray.cluster_utils.Cluster. Prints the
makespan against the ideal (total benchmark work / GPUs) as an efficiency ratio, and the same ratio for a
strictly sequential runner (one attempt after another, stage after stage: the sum of all durations,
computed from the same draws rather than waited for).
"""

from __future__ import annotations

import argparse
import tempfile
import time

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
    # sessions; here 60 Python workers starting on 2 cores would dominate a 1-minute simulated run.
    out = tempfile.mkdtemp(prefix="isobench-sched-")
    settings = Settings(agent_concurrency=args.agent_concurrency, work_dir=out + "/work")
    driver = Driver(RunStore(out, background_writes=True), plan, settings, stages=simulate.stages(args.scale), show_progress=False)
    warm_started = time.monotonic()
    ray.get([_warm.remote() for _ in range(args.agent_concurrency + gpus)])
    slots = driver.start_slots()
    warmup = time.monotonic() - warm_started
    started = time.monotonic()
    driver.run()
    makespan = time.monotonic() - started
    done = len(RunStore(out).records())
    ray.shutdown()
    cluster.shutdown()

    print(f"{args.attempts} attempts ({done} recorded), {gpus} logical GPUs on {args.nodes} nodes, "
          f"{args.scale} s per simulated minute, agent concurrency {args.agent_concurrency}")
    print(f"worker pool and {slots} benchmark actors started before timing: {warmup:.1f} s (not in the makespan)")
    print(f"total benchmark work {bench_work:.1f} s -> ideal makespan {ideal:.1f} s")
    print(f"pipelined Ray driver: makespan {makespan:.1f} s, efficiency {ideal / makespan:.3f}")
    print(f"sequential runner:    makespan {sequential:.1f} s, efficiency {ideal / sequential:.3f}")
    print(f"speed-up of the pipelined driver over the sequential runner: {sequential / makespan:.1f}x")


if __name__ == "__main__":
    main()
