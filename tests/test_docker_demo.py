"""The same demo tasks with the local sandbox and with every stage in containers give the same outcomes.

Slow (two runs of two tasks, about 15 minutes here): `make test-docker-demo`, which `.ci/run` runs; not
part of `make test`. Skips with the reason where no Docker engine can run (tests/dockerd.py).
"""

import polars as pl
import pytest
import ray

from isobench_ray import demo, runner
from isobench_ray.agents import parse_agents

pytestmark = [pytest.mark.slow, pytest.mark.docker_e2e, pytest.mark.timeout(2400)]
pytest_plugins = ["dockerd"]
TASKS = ["demo-free-block-scan", "demo-prefix-cache-hashing"]  # a serving and a throughput task, with a good and a broken replay


def _run(make_settings, tmp_path, name, **settings):
    demo.build_repo()
    base = make_settings(work_dir=str(tmp_path / f"work-{name}"), rounds=3, max_rounds=3, min_samples=3, **settings)
    out = tmp_path / name
    try:
        runner.run(str(demo.TASKS_FILE), parse_agents(demo.agents_arg()), out, base, task_ids=TASKS, num_cpus=2,
                   show_progress=False)
    finally:
        ray.shutdown()
    return {(r["task_id"], r["agent"]): r for r in pl.read_parquet(out / "attempts.parquet").iter_rows(named=True)}


def test_docker_and_local_sandboxes_give_the_same_outcomes(tmp_path, docker_host, docker_image, make_settings):
    local = _run(make_settings, tmp_path, "local")
    docker = _run(make_settings, tmp_path, "docker", sandbox="docker", docker_host=docker_host, docker_image=docker_image)
    assert local.keys() == docker.keys()
    for key in local:
        a, b = local[key], docker[key]
        # what the sandbox could change; the hard class of a patch as fast as the human's is the machine's noise
        assert (a["status"], a["failure_cause"], a["correctness"], a["bottleneck_target"]) == \
               (b["status"], b["failure_cause"], b["correctness"], b["bottleneck_target"]), (key, a, b)
        if key[1] in ("human", "replay-good"):  # the fixes measure as fixes in both
            assert a["speedup_vs_baseline"] > 1.1 and b["speedup_vs_baseline"] > 1.1, (a, b)
        if key[1] == "noop":  # and doing nothing as nothing, against the human commit
            assert a["hard_class"] == b["hard_class"] == "worse", (a, b)
    assert docker[(TASKS[1], "replay-syntax")]["failure_cause"] == "compile_error"
    assert {r["agent_sandbox"] for r in docker.values() if r["agent_sandbox"]} == {"docker"}
