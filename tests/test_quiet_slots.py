"""Quiet benchmark slots: cores of their own, a clean GPU before every arm, telemetry beside every sample.

Pinning runs for real (the kernel's affinity of a real child process). The GPU checks run where NVML is;
here there is none, and the checks say so and never fail a run. A slot whose GPU is held by something
else is replaced, and its attempt goes to another slot, on a real local Ray cluster.
"""

import os

import pytest
import ray

from isobench_ray.cluster import simulate
from isobench_ray.cluster.driver import Driver
from isobench_ray.hardware import Gpus, node_cores, share_cores, split_cores, throttled
from isobench_ray.pipeline import plan_attempts
from isobench_ray.sandbox.local import LocalSandboxes
from isobench_ray.schema import ArmResult, HardClass, Measurements, Run
from isobench_ray.scoring.hard import score
from isobench_ray.store import RunStore


@pytest.mark.parametrize("cores", [(0, 1), tuple(range(16)), tuple(range(3)), (5,)])
def test_server_and_client_cores_are_disjoint_and_cover_the_slot(cores):
    server, client = split_cores(cores)
    assert set(server) | set(client) == set(cores)
    if len(cores) >= 2:
        assert server and client and not set(server) & set(client)
        assert len(client) <= len(server)


def test_slots_on_a_node_share_its_cores_evenly_without_overlap():
    shares = [share_cores(range(16), i, 4) for i in range(4)]
    assert [len(s) for s in shares] == [4, 4, 4, 4]
    assert sorted(c for s in shares for c in s) == list(range(16))
    assert share_cores(range(2), 0, 1) == (0, 1)


def test_a_pinned_command_and_its_children_run_on_its_cores_with_sized_thread_pools(tmp_path):
    core = node_cores()[-1]
    probe = ("import os, subprocess, sys; print(sorted(os.sched_getaffinity(0)), os.environ['OMP_NUM_THREADS']); "
             "print(subprocess.check_output([sys.executable, '-c', 'import os; print(sorted(os.sched_getaffinity(0)))'], text=True))")
    res = LocalSandboxes()("pin", writable=[tmp_path], network=True).exec(["python", "-c", probe], cwd=tmp_path, timeout_s=30,
                                                                           cpus=[core])
    assert res.ok, res.output
    first, child = res.output.strip().splitlines()
    assert first == f"[{core}] 1" and child == f"[{core}]"


def test_without_nvml_the_gpu_checks_say_so_and_never_fail():
    gpus = Gpus([0])
    if gpus.available:
        pytest.skip("NVML is present here: its real checks are make test-gpu (tests/test_gpu_slot.py)")
    check = gpus.check_clean()
    assert check.clean and check.detail.startswith("not checked: NVML unavailable")
    assert gpus.telemetry() == {}
    assert gpus.slot_cores(node_gpus=1) == node_cores()


def test_a_throttled_sample_is_recognised_from_its_reasons():
    assert throttled({"gpu0_throttle": 0x4})  # software power cap, as measured on an H100 under load
    assert not throttled({"gpu0_throttle": 0x1, "load1": 0.5})  # GPU idle: not a throttle


def test_below_the_minimum_samples_the_strict_class_is_inconclusive():
    def arm(name, values):
        return ArmResult(arm=name, commit="c", command="x", runs=[Run(arm=name, round=i, metrics={"avg_latency": v})
                                                                  for i, v in enumerate(values)])

    def measured(n):
        return Measurements(attempt_id="t.a.0.x", slot="s", primary_metric="avg_latency", higher_is_better=False,
                            arms=[arm("baseline", [1.0, 1.01] * n), arm("human", [0.5, 0.51] * n), arm("agent", [0.30, 0.31] * n)])

    assert score(measured(1), min_samples=5).hard_class_ci is HardClass.inconclusive  # two samples: too few
    assert score(measured(3), min_samples=5).hard_class_ci is HardClass.beats


@pytest.mark.slow  # a local Ray cluster
def test_a_dirty_gpu_slot_is_replaced_and_its_attempts_go_elsewhere(tmp_path, make_settings):
    ray.init(num_cpus=4, num_gpus=2, include_dashboard=False)
    try:
        plan = plan_attempts(simulate.tasks(6), [simulate.SimAgent()])
        store = RunStore(tmp_path / "run")
        driver = Driver(store, plan, make_settings(), stages=simulate.stages(0.01, dirty_gpu=0),
                        show_progress=False)
        driver.run()
        records = store.records()
        assert len(records) == 6 and all(r.status.value == "success" for r in records), [r.detail for r in records]
        assert {r.measurements.slot.rsplit("/", 1)[1] for r in records} == {"gpu1"}  # measured only on the clean GPU
        assert driver.slots.serial > 2  # the dirty slot's actor was replaced at least once
    finally:
        ray.shutdown()


@pytest.mark.slow  # seconds of deliberate load on the slot's cores
def test_outside_load_on_the_slots_cores_is_seen(tmp_path):
    import subprocess
    import sys
    import time

    from isobench_ray.hardware import busy_seconds, outside_share

    core = node_cores()[-1]
    sandbox = LocalSandboxes()("load", writable=[tmp_path], network=True)

    def measure():
        busy = busy_seconds([core])
        res = sandbox.exec(["python", "-c", "import time; time.sleep(1.5)"], cwd=tmp_path, timeout_s=30, cpus=[core])
        return outside_share(busy_seconds([core]) - busy, res.cpu_s, res.duration_s, [core])

    quiet = measure()
    burner = subprocess.Popen([sys.executable, "-c", f"import os; os.sched_setaffinity(0, [{core}])\nwhile True: pass"])
    try:
        time.sleep(0.3)
        loaded = measure()
    finally:
        burner.kill()
        burner.wait()
    assert loaded > 0.6, (quiet, loaded)  # another process spun on the slot's core
    assert loaded > quiet + 0.3


def test_the_serving_clients_own_warm_up_is_asked_for_only_where_its_script_has_the_flag():
    from isobench_ray.engines import engine_named

    vllm, sglang = engine_named("vllm"), engine_named("sglang")
    command = "python benchmarks/benchmark_serving.py --model m --num-prompts 100"
    assert vllm.client_warmup_flags(command, 'parser.add_argument("--num-warmups", type=int, default=0)') == ["--num-warmups", "2"]
    assert vllm.client_warmup_flags(command, 'parser.add_argument("--num-prompts")') == []  # an older script: not passed
    assert vllm.client_warmup_flags(command + " --num-warmups 5", '"--num-warmups"') == []  # the task's own choice stands
    assert vllm.client_warmup_flags(command, None) == []
    assert sglang.client_warmup_flags("python -m sglang.bench_serving --num-prompts 10",
                                      'parser.add_argument("--warmup-requests", type=int, default=1)') == ["--warmup-requests", "2"]
    assert engine_named("minillm").client_warmup_flags(command, '"--num-warmups"') == []  # the demo engine: runs only


@pytest.mark.slow  # a local Ray cluster
def test_on_a_gpu_node_sessions_and_validations_run_on_the_host_cores_and_slots_never_get_them(tmp_path, make_settings):
    """Two cores and one (logical) GPU: core 0 is kept for sessions and validation, the slot gets core 1; the
    stage's worker is pinned only while the stage runs."""
    from functools import partial

    from isobench_ray.stages import Stages

    def session(*args, **kwargs):
        out = simulate.session(*args, **kwargs)
        return out[0].model_copy(update={"detail": repr(sorted(os.sched_getaffinity(0)))}), out[1]

    class CoresBenchmark(simulate.SimBenchmark):
        def run(self, attempt, task, patch):
            m, logs = super().run(attempt, task, patch)
            return m.model_copy(update={"stop_reason": repr(list(self.slot.cpus))}), logs

    if len(node_cores()) < 2:
        pytest.skip("needs two cores")
    stages = Stages(session=partial(session, scale=0.01), validate=partial(simulate.validate, scale=0.01),
                    benchmark=partial(CoresBenchmark, scale=0.01), sandboxes=LocalSandboxes())
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False)
    try:
        store = RunStore(tmp_path / "run")
        settings = make_settings(host_cores=1)
        Driver(store, plan_attempts(simulate.tasks(2), [simulate.SimAgent()]), settings, stages=stages,
               show_progress=False).run()
        records = store.records()
        host, rest = node_cores()[:1], node_cores()[1:]
        assert len(records) == 2 and all(r.status.value == "success" for r in records), [r.detail for r in records]
        assert {r.session.detail for r in records} == {repr(list(host))}
        assert {r.measurements.stop_reason for r in records} == {repr(list(rest))}
    finally:
        ray.shutdown()


def test_host_cores_leave_every_gpu_a_core_and_cpu_nodes_none():
    from isobench_ray.hardware import host_cores

    assert host_cores(node_gpus=1, keep=2, cores=range(16)) == (0, 1)
    assert host_cores(node_gpus=8, keep=4, cores=range(10)) == (0, 1)  # each of the 8 GPUs keeps a core
    assert host_cores(node_gpus=0, keep=2, cores=range(16)) == ()  # a CPU node: its slot is the whole node
    assert host_cores(node_gpus=1, keep=0, cores=range(16)) == ()
    expected = tuple(c for c in node_cores() if c not in (0, 1)) or node_cores()  # never an empty slot
    assert Gpus((0,)).slot_cores(1, exclude=(0, 1)) == expected
