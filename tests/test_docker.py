"""The Docker sandbox beyond the conformance suite: its hard time limit, its network, its environment,
reaping a dead slot actor's containers, and the errors that name the machine problem.

Everything runs against a real, private dockerd (tests/dockerd.py) and the debootstrap base image; where
neither can be had the tests skip with the reason. The GPU device request is checked on the arguments the
engine would get (no GPU here).
"""

import dataclasses
import gc
import pickle
import socket
import time
from pathlib import Path

import pytest
from conftest import HelloHandler, serve

from isobench_ray.config import Settings
from isobench_ray.sandbox import SandboxUnavailable, make_sandboxes
from isobench_ray.sandbox.docker import DockerSandboxes
from isobench_ray.sandbox.docker import sandbox as docker_sandbox

pytest_plugins = ["dockerd"]  # docker_host, docker_image, docker_sandboxes: one dockerd for the whole session


def _client(url):
    import docker

    return docker.DockerClient(base_url=url, timeout=60)


def _labelled(url, label: str) -> list[str]:
    """Names of every container, running or not, that carries the label (what `docker ps -a` shows)."""
    client = _client(url)
    try:
        return [c.name for c in client.containers.list(all=True, filters={"label": label})]
    finally:
        client.close()


@pytest.fixture
def all_interfaces_server():
    """A real HTTP server on every address of this machine (loopback, docker bridge, the LAN's); yields its port."""
    with serve(HelloHandler, host="0.0.0.0") as server:
        yield server.server_address[1]


def _fetch(url: str) -> list[str]:
    return ["python3", "-c", f"import urllib.request; print(urllib.request.urlopen('{url}', timeout=3).read())"]


def _host_addresses(docker_url) -> dict[str, str]:
    """The host's addresses a container might try: loopback, the docker bridge's gateway, the LAN's."""
    addresses = {"loopback": "127.0.0.1"}
    client = _client(docker_url)
    try:
        bridge = client.networks.list(names=["bridge"])
        config = bridge[0].attrs.get("IPAM", {}).get("Config") or [] if bridge else []
        if config and config[0].get("Gateway"):
            addresses["docker bridge"] = config[0]["Gateway"]
    finally:
        client.close()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))  # no packet is sent: the kernel picks the outgoing address
            if not s.getsockname()[0].startswith("127."):
                addresses["LAN"] = s.getsockname()[0]
    except OSError:
        pass
    return addresses


def test_a_container_past_its_time_limit_is_gone(docker_host, docker_image, tmp_path):
    factory = DockerSandboxes(host=docker_host, image=docker_image, time_limit_s=5, shm_size="64m")
    sandbox = factory("limit.bench", writable=[tmp_path], network=False)
    server = sandbox.start("sleep 600", cwd=tmp_path, log_path=tmp_path / "server.log")
    assert _labelled(docker_host, f"isobench.tag={sandbox.tag}") == [sandbox.name]
    deadline = time.monotonic() + 30
    while _labelled(docker_host, f"isobench.tag={sandbox.tag}") and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not _labelled(docker_host, f"isobench.tag={sandbox.tag}"), "the container outlived its time limit"
    assert server.poll() is not None  # the server went with it
    after = sandbox.exec("echo hi", cwd=tmp_path, timeout_s=10)  # reported, never raised
    assert not after.ok and after.returncode == 125 and "docker:" in after.output
    late = sandbox.start("sleep 1", cwd=tmp_path, log_path=tmp_path / "late.log")
    assert late.poll() == 125 and "docker:" in late.output()
    late.stop()
    assert sandbox.cleanup() == []


def test_a_timed_out_command_leaves_nothing_and_cleanup_removes_the_container(docker_sandboxes, docker_host, tmp_path):
    sandbox = docker_sandboxes("timeout.validate", writable=[tmp_path], network=False)
    res = sandbox.exec("setsid sleep 400 & sleep 400 & echo started; sleep 400", cwd=tmp_path, timeout_s=1)
    assert res.timed_out and res.returncode is None and "started" in res.output
    top = _client(docker_host).containers.get(sandbox.id).top(ps_args="-eo pid,args")["Processes"]
    assert not [p for p in top if "sleep 400" in " ".join(p)], top
    sandbox.cleanup()
    assert not _labelled(docker_host, f"isobench.tag={sandbox.tag}")


def test_a_container_without_network_reaches_nothing_on_the_host(docker_sandboxes, docker_host, tmp_path,
                                                                 all_interfaces_server):
    port = all_interfaces_server
    addresses = _host_addresses(docker_host)
    # the control: the host's own network, asked for by name (network=True alone never reaches the host)
    opened = dataclasses.replace(docker_sandboxes, network_mode="host")("net-open", writable=[tmp_path], network=True)
    closed = docker_sandboxes("net-closed", writable=[tmp_path], network=False)
    try:
        for where, address in addresses.items():
            url = f"http://{address}:{port}/"
            control = opened.exec(_fetch(url), cwd=tmp_path, timeout_s=20)
            assert control.ok and "hello from the host" in control.output, (where, control.output)
            cut = closed.exec(_fetch(url), cwd=tmp_path, timeout_s=20)
            assert not cut.ok and "hello from the host" not in cut.output, f"reached the host's {where} address {address}"
            assert closed.http_status(url, timeout_s=2) is None
        assert "docker bridge" in addresses or not _bridge_expected(docker_host)
    finally:
        opened.cleanup()
        closed.cleanup()


def _bridge_expected(url) -> bool:
    client = _client(url)
    try:
        return bool(client.networks.list(names=["bridge"]))
    finally:
        client.close()


def test_a_bridged_container_reaches_neither_the_bridge_nor_the_hosts_loopback(docker_host, docker_image, tmp_path,
                                                                                all_interfaces_server):
    """The engine's own bridge, named: the host is cut off there too (its gateway is the host)."""
    addresses = _host_addresses(docker_host)
    if "docker bridge" not in addresses:
        pytest.skip("this dockerd runs without the bridge (--bridge=none)")
    factory = DockerSandboxes(host=docker_host, image=docker_image, shm_size="64m", time_limit_s=600, network_mode="bridge",
                              cache_dir=str(tmp_path / "cache"))
    sandbox = factory("net-bridge", writable=[tmp_path], network=True)
    try:
        port = all_interfaces_server
        assert not sandbox.exec(_fetch(f"http://{addresses['docker bridge']}:{port}/"), cwd=tmp_path, timeout_s=20).ok
        assert not sandbox.exec(_fetch(f"http://127.0.0.1:{port}/"), cwd=tmp_path, timeout_s=20).ok
    finally:
        sandbox.cleanup()


def test_a_container_sees_no_host_variable_it_was_not_given(docker_host, docker_image, tmp_path, monkeypatch):
    monkeypatch.setenv("ISOBENCH_TEST_SECRET", "hunter2")
    monkeypatch.setenv("HF_HOME", "/models/hf")
    factory = DockerSandboxes(host=docker_host, image=docker_image, shm_size="64m", time_limit_s=600,
                              passthrough=("HF_HOME",))
    agent = factory("env-agent", writable=[tmp_path], network=False, isolate=True, env={"GIVEN": "yes"})
    bench = factory("env.bench", writable=[tmp_path], network=False, slot_env={"ISOBENCH_SLOT": "n/cpu"})
    try:
        seen = agent.exec("env; cat /proc/1/environ | tr '\\0' '\\n'", cwd=tmp_path, timeout_s=20)
        assert seen.ok and "GIVEN=yes" in seen.output
        assert "hunter2" not in seen.output and "ISOBENCH_TEST_SECRET" not in seen.output
        assert "HF_HOME" not in seen.output  # an agent gets no passthrough
        config_env = _client(docker_host).containers.get(agent.id).attrs["Config"]["Env"]
        assert not [e for e in config_env if "hunter2" in e or e.startswith("GIVEN=")]
        bench_env = bench.exec("env", cwd=tmp_path, timeout_s=20).output
        assert "HF_HOME=/models/hf" in bench_env and "ISOBENCH_SLOT=n/cpu" in bench_env and "hunter2" not in bench_env
    finally:
        agent.cleanup()
        bench.cleanup()


def test_a_dead_slot_actors_container_is_reaped_by_the_next(docker_sandboxes, docker_host, tmp_path):
    slot, other = "10.0.0.1/abcd1234/gpu0", "10.0.0.1/abcd1234/gpu1"
    # the first actor: a server on its slot, then the actor dies without cleaning up
    dead = docker_sandboxes("att9.bench", writable=[tmp_path], network=False, slot_env={"ISOBENCH_SLOT": slot})
    dead.start("sleep 900 & sleep 900", cwd=tmp_path, log_path=tmp_path / "server.log")
    name = dead.name
    neighbour = docker_sandboxes("att8.bench", writable=[tmp_path], network=False, slot_env={"ISOBENCH_SLOT": other})
    del dead
    gc.collect()
    assert _labelled(docker_host, f"isobench.slot={slot}") == [name]
    # the next actor on the slot gets the factory through pickle, as Ray gives it
    successor = pickle.loads(pickle.dumps(docker_sandboxes))
    reaped = successor.reap("ISOBENCH_SLOT", slot)
    assert len(reaped) == 1 and name in reaped[0] and "sleep 900" in reaped[0]
    assert not _labelled(docker_host, f"isobench.slot={slot}")
    assert _labelled(docker_host, f"isobench.slot={other}") == [neighbour.name]  # not its slot: left alone
    assert successor.reap("ISOBENCH_SLOT", slot) == []
    neighbour.cleanup()


def test_labels_pinning_and_shm(docker_sandboxes, docker_host, tmp_path):
    sandbox = docker_sandboxes("demo-x.human.0.ab12.bench", writable=[tmp_path], network=False, slot_env={"ISOBENCH_SLOT": "n/cpu"})
    try:
        labels = _client(docker_host).containers.get(sandbox.id).labels
        assert labels["isobench.tag"] == "demo-x.human.0.ab12.bench" and labels["isobench.attempt"] == "demo-x.human.0.ab12"
        assert labels["isobench.stage"] == "bench" and labels["isobench.slot"] == "n/cpu"
        res = sandbox.exec("grep Cpus_allowed_list /proc/self/status; echo threads=$OMP_NUM_THREADS; df -m /dev/shm | tail -1",
                           cwd=tmp_path, timeout_s=20, cpus=[0])
        assert res.ok, res.output
        assert "Cpus_allowed_list:\t0\n" in res.output and "threads=1" in res.output
        assert " 64 " in res.output  # shm_size
        busy = sandbox.exec("python3 -c 'sum(i * i for i in range(3_000_000))'", cwd=tmp_path, timeout_s=60)
        assert busy.ok and busy.cpu_s > 0.05
    finally:
        sandbox.cleanup()


def test_files_outside_the_mounts_live_in_the_container(docker_sandboxes, tmp_path):
    sandbox = docker_sandboxes("files", writable=[tmp_path], network=False)
    try:
        sandbox.write_file(Path("/opt/isobench/x.txt"), "inside")
        assert sandbox.read_file(Path("/opt/isobench/x.txt")) == b"inside"
        assert not Path("/opt/isobench/x.txt").exists()
        assert sandbox.exec("cat /opt/isobench/x.txt", cwd=tmp_path, timeout_s=20).output == "inside"
        with pytest.raises(FileNotFoundError):
            sandbox.read_file(Path("/opt/isobench/missing"))
    finally:
        sandbox.cleanup()


def test_no_engine_or_no_image_is_sandbox_unavailable(docker_host, tmp_path):
    with pytest.raises(SandboxUnavailable, match="cannot reach the Docker engine"):
        DockerSandboxes(host=f"unix://{tmp_path}/nothing.sock")("t", writable=[tmp_path], network=False)
    with pytest.raises(SandboxUnavailable, match="isobench-missing:nope.*build it"):
        DockerSandboxes(host=docker_host, image="isobench-missing:nope")("t", writable=[tmp_path], network=False)


def test_gpus_become_a_device_request_renumbered_inside(monkeypatch, tmp_path):
    calls = {}

    class Images:
        def get(self, name):
            return name

    class Containers:
        def run(self, image, command, **kwargs):
            calls.update(kwargs, image=image, command=command)
            return type("C", (), {"id": "fake", "put_archive": lambda self, path, data: True})()

    fake = type("Client", (), {"images": Images(), "containers": Containers(), "api": None})()
    monkeypatch.setattr(docker_sandbox, "client_for", lambda host: fake)
    factory = DockerSandboxes(host="unix:///fake.sock", image="engine:gpu", shm_size="16g", time_limit_s=7200,
                              network_mode="host", cache_dir=str(tmp_path / "cache"))
    sandbox = factory("att1.bench", writable=[tmp_path / "tree"], network=True,
                      slot_env={"CUDA_VISIBLE_DEVICES": "2,3", "ISOBENCH_SLOT": "n/gpu2,3"})
    (request,) = calls["device_requests"]
    assert request["DeviceIDs"] == ["2", "3"] and request["Capabilities"] == [["gpu"]]
    assert calls["shm_size"] == "16g" and calls["command"][:2] == ["sh", "-c"] and calls["init"] and calls["auto_remove"]
    assert calls["network_mode"] == "host"
    assert sandbox._env(None, "p", None)["CUDA_VISIBLE_DEVICES"] == "0,1"  # the container's own numbering
    mounts = [(m["Target"], m["Source"]) for m in calls["mounts"]]
    assert mounts[0] == (str(tmp_path / "tree"), str((tmp_path / "tree").resolve()))
    assert mounts[1][0] == "/.isobench-ttl" and mounts[1][1].startswith(str(tmp_path / "cache")) and len(mounts) == 2


def test_settings_choose_the_docker_factory():
    factory = make_sandboxes(Settings(sandbox="docker", docker_image="engine:x", docker_shm_size="1g", run_dir="/r/run-1"))
    assert isinstance(factory, DockerSandboxes) and factory.kind == "docker" and factory.can_isolate
    assert (factory.image, factory.shm_size, factory.run) == ("engine:x", "1g", "run-1")
    assert pickle.loads(pickle.dumps(factory)) == factory


def test_a_run_with_an_unreachable_engine_or_a_missing_image_stops_before_planning(docker_host, tmp_path):
    from isobench_ray import demo, runner
    from isobench_ray.agents import parse_agents

    for settings, words in [
        (Settings(sandbox="docker", docker_host=f"unix://{tmp_path}/none.sock"), "cannot reach the Docker engine"),
        (Settings(sandbox="docker", docker_host=docker_host, docker_image="isobench-nothing:here"), "is not on the engine"),
    ]:
        with pytest.raises(runner.PlanError, match=f"--sandbox docker: .*{words}"):
            runner.run(str(demo.TASKS_FILE), parse_agents("human"), tmp_path / "run", settings, show_progress=False)
        assert not (tmp_path / "run" / "plan.json").exists()  # nothing planned, nothing measured
