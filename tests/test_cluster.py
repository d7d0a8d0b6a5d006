"""The cluster layer on real multi-node Ray clusters on this machine: dead nodes, dead drivers, job submit.

Stages are the simulated ones (isobench_ray/simulate.py): these tests are about scheduling, retries and
resume, which do not depend on what a stage does. The real stages run in test_pipeline.py.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil
import pytest
import ray
from ray.cluster_utils import Cluster

from isobench_ray import demo
from isobench_ray.cluster import simulate
from isobench_ray.cluster.driver import Driver
from isobench_ray.engines.server import free_port
from isobench_ray.pipeline import plan_attempts
from isobench_ray.store import RunStore

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_a_worker_node_dies_mid_run_and_nothing_is_lost(tmp_path, make_settings):
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 0})
    doomed = cluster.add_node(num_cpus=8, num_gpus=2)
    cluster.add_node(num_cpus=8, num_gpus=2)
    ray.init(address=cluster.address)
    try:
        plan = plan_attempts(simulate.tasks(24), [simulate.SimAgent()])
        store = RunStore(tmp_path / "run")
        driver = Driver(store, plan, make_settings(agent_concurrency=16),
                        stages=simulate.stages(0.05), show_progress=False)

        def kill_when_busy():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and driver.progress.counts["done"] < 4:
                time.sleep(0.1)
            cluster.remove_node(doomed, allow_graceful=False)

        killer = threading.Thread(target=kill_when_busy)
        killer.start()
        driver.run()
        killer.join()
        records = store.records()
        assert sorted(r.attempt.id for r in records) == sorted(a.id for a, _, _ in plan)  # every one, once
        assert driver.progress.counts["done"] == len(plan)  # no attempt finished twice
        assert all(r.status.value == "success" for r in records), [r.detail for r in records if r.status.value != "success"]
        assert not list((tmp_path / "run").rglob("*.tmp"))
        assert len({r.measurements.slot for r in records}) >= 2
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_a_node_that_joins_late_gets_benchmarks_at_once(tmp_path, make_settings):
    """One GPU node when the run starts; a second joins once the first benchmark is done. The pool looks at
    the alive nodes while benchmarks wait (at most once a second), not only at the start: the new node's slot
    takes a share of what is left, and nothing is lost or run twice."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 0})
    cluster.add_node(num_cpus=4, num_gpus=1)
    ray.init(address=cluster.address)
    try:
        plan = plan_attempts(simulate.tasks(12), [simulate.SimAgent()])
        store = RunStore(tmp_path / "run")
        # benchmarks of 1.5-4 s: about 30 s of work for one slot, time for a new slot's actor to start
        driver = Driver(store, plan, make_settings(agent_concurrency=12), stages=simulate.stages(0.5), show_progress=False)
        runner = threading.Thread(target=driver.run)
        runner.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and driver.progress.counts["done"] < 1:
            time.sleep(0.1)
        late = cluster.add_node(num_cpus=4, num_gpus=1)
        runner.join(timeout=300)
        assert not runner.is_alive()
        records = store.records()
        assert sorted(r.attempt.id for r in records) == sorted(a.id for a, _, _ in plan)
        on_late = [r.attempt.id for r in records if f"/{late.node_id[:8]}/" in r.measurements.slot]
        assert len(on_late) >= 2, sorted(r.measurements.slot for r in records)
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_tensor_parallel_tasks_get_slots_of_that_many_gpus_on_one_node(tmp_path, make_settings):
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 0})
    cluster.add_node(num_cpus=4, num_gpus=2)
    cluster.add_node(num_cpus=4, num_gpus=1)
    ray.init(address=cluster.address)
    try:
        tasks = simulate.tasks(4) + simulate.tasks(2, gpus=2, start=4) + simulate.tasks(1, gpus=4, start=6)
        plan = plan_attempts(tasks, [simulate.SimAgent()])
        Driver(RunStore(tmp_path / "run"), plan, make_settings(agent_concurrency=4),
               stages=simulate.stages(0.02), show_progress=False).run()
        records = {r.attempt.task_id: r for r in RunStore(tmp_path / "run").records()}
        gpus_of = {tid: r.measurements.slot.rsplit("/gpu", 1)[1].split(",") for tid, r in records.items() if r.measurements}
        for task in tasks[:4]:
            assert len(gpus_of[task.id]) == 1, records[task.id]
        for task in tasks[4:6]:  # both GPUs of the two-GPU node, never one of each node
            assert len(gpus_of[task.id]) == 2 and records[task.id].status.value == "success", records[task.id]
        impossible = records[tasks[6].id]
        assert impossible.status.value == "error" and impossible.failure_cause.value == "no_slot"
        assert "needs 4 GPUs on one node; the largest node alive has 2" in impossible.detail
    finally:
        ray.shutdown()
        cluster.shutdown()


DRIVER = textwrap.dedent("""
    import sys, ray
    from isobench_ray.cluster import simulate
    from isobench_ray.cluster.driver import Driver
    from isobench_ray.pipeline import plan_attempts
    from isobench_ray.config import Settings
    from isobench_ray.store import RunStore
    ray.init(num_cpus=4, num_gpus=2, include_dashboard=False)
    plan = plan_attempts(simulate.tasks(16), [simulate.SimAgent()])
    Driver(RunStore(sys.argv[1]), plan, Settings(agent_concurrency=4, work_dir=sys.argv[1] + "-work"),
           stages=simulate.stages(0.1), show_progress=False).run()
""")


def test_a_killed_driver_resumes_without_redoing_or_losing_anything(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    out = tmp_path / "run"
    env = {**os.environ, "RAY_ADDRESS": ""}
    proc = subprocess.Popen([sys.executable, str(script), str(out)], env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.glob("attempts/*/record.json"))) < 4:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started
    proc.wait()
    first = {p: p.stat().st_mtime_ns for p in out.glob("attempts/*/record.json")}
    assert 4 <= len(first) < 16
    subprocess.run([sys.executable, str(script), str(out)], env=env, check=True, timeout=300)
    records = list(out.glob("attempts/*/record.json"))
    assert len(records) == 16
    assert {p: p.stat().st_mtime_ns for p in first} == first  # finished attempts were not redone
    assert not list(out.rglob("*.tmp"))
    for path in out.glob("attempts/*/*.json"):
        json.loads(path.read_text())  # nothing half-written


@contextmanager
def own_ray_head(env: dict, dash: int):
    """A Ray head of this test's own (its own temporary folder), stopped afterwards by that folder: the
    processes whose command line names it, and their children. Never `ray stop`, which stops every Ray on
    the machine, other people's included."""
    ray_bin = Path(sys.executable).parent / "ray"
    temp_dir = tempfile.mkdtemp(prefix="rj", dir="/tmp")  # Ray's socket paths must stay under 108 bytes
    # every port of its own: a head a person started by hand on this machine keeps Ray's defaults (the dashboard
    # agent's 52365 among them), and a second agent on a taken port never comes up (.ci/ray_neighbour.py)
    ports = [f"--{name}-port={free_port()}" for name in ("dashboard-agent-listen", "dashboard-agent-grpc", "metrics-export",
                                                          "runtime-env-agent", "ray-client-server")]
    subprocess.run([str(ray_bin), "start", "--head", f"--port={free_port()}", "--node-ip-address=127.0.0.1",
                    "--num-cpus=2", "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
                    *ports, f"--temp-dir={temp_dir}", "--disable-usage-stats"], env=env, check=True, capture_output=True,
                   timeout=180)
    try:
        deadline = time.monotonic() + 180  # the job agent comes up after the head: submitting earlier is refused
        while subprocess.run([str(ray_bin), "job", "list", "--address", f"http://127.0.0.1:{dash}"], env=env,
                             capture_output=True, timeout=60).returncode != 0 and time.monotonic() < deadline:
            time.sleep(2)
        yield temp_dir
    finally:
        ours = {}
        for proc in psutil.process_iter(["cmdline"]):
            try:
                if any(temp_dir in arg for arg in proc.info["cmdline"] or []):
                    for member in (proc, *proc.children(recursive=True)):
                        ours[member.pid] = member
            except psutil.Error:
                continue
        for member in ours.values():
            with suppress(psutil.Error):
                member.terminate()
        _, alive = psutil.wait_procs(list(ours.values()), timeout=30)
        for member in alive:
            with suppress(psutil.Error):
                member.kill()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _readme_job_lines() -> tuple[str, str]:
    """The README's `ray job submit` and `isobench status` lines, as a user copies them."""
    lines = (ROOT / "README.md").read_text().splitlines()
    submit = next(line.strip() for line in lines if line.strip().startswith("ray job submit --working-dir ."))
    status = next(line.strip() for line in lines if line.strip().startswith("isobench status ~/"))
    return submit, status


@pytest.mark.slow  # a Ray head, a job, one noop attempt of the demo
def test_the_readmes_ray_job_submit_line_runs_verbatim_and_leaves_other_rays_alone(tmp_path):
    demo.build_repo()
    bystander = ray_bystander()  # a Ray someone else started on this machine: it must survive
    dash, home = free_port(), tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled"), "HOME": str(home),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "RAY_ADDRESS": f"http://127.0.0.1:{dash}"}
    submit, status = _readme_job_lines()
    try:
        with own_ray_head({**env, "RAY_ADDRESS": ""}, dash):
            for _ in range(30):  # the node's job agent starts after the head (slowly on a busy machine)
                job = subprocess.run(["bash", "-c", submit], cwd=ROOT, env=env, capture_output=True, text=True,
                                     timeout=600)
                if "No available agent" not in job.stderr + job.stdout:
                    break
                time.sleep(5)
            assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
            assert "results go to" in job.stdout and "succeeded" in job.stdout
        out = home / "isobench-results" / "results" / "job-run"
        assert [json.loads(p.read_text())["status"] for p in out.glob("attempts/*/record.json")] == ["success"]
        shown = subprocess.run(["bash", "-c", status], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert shown.returncode == 0 and "1/1 attempts done" in shown.stdout, shown.stdout + shown.stderr
        assert bystander.is_running()
    finally:
        bystander.terminate()


def ray_bystander() -> psutil.Process:
    """A process that looks like another user's Ray to `ray stop` (its name is raylet-like): what a test must
    never kill."""
    fake = Path(tempfile.mkdtemp()) / "raylet"
    fake.write_text("#!/bin/sh\nsleep 600\n")
    fake.chmod(0o755)
    return psutil.Process(subprocess.Popen([str(fake)], start_new_session=True).pid)


def test_failures_are_kept_unless_retry_failed_and_infra_errors_are_redone(tmp_path, make_settings):
    from isobench_ray.schema import FailureCause, Status

    ray.init(num_cpus=4, num_gpus=1, include_dashboard=False)
    try:
        plan = plan_attempts(simulate.tasks(3), [simulate.SimAgent()])
        settings = make_settings()

        def run(retry_failed=False):
            store = RunStore(tmp_path / "run")
            Driver(store, plan, settings, stages=simulate.stages(0.01), retry_failed=retry_failed, show_progress=False).run()
            return {r.attempt.id: r for r in RunStore(tmp_path / "run").records()}

        first = run()
        failed_id, infra_id, _ = (a.id for a, _, _ in plan)
        store = RunStore(tmp_path / "run")
        for aid, cause, status in ((failed_id, FailureCause.no_patch, Status.failed), (infra_id, FailureCause.infra_error, Status.error)):
            store.save_stage(aid, "record", first[aid].model_copy(update={"failure_cause": cause, "status": status}))
        second = run()
        assert second[failed_id].failure_cause is FailureCause.no_patch  # a recorded failure stays
        assert second[infra_id].status is Status.success  # an infra error is redone
        assert run(retry_failed=True)[failed_id].status is Status.success  # unless asked
    finally:
        ray.shutdown()
