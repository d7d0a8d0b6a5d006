"""The Docker sandbox beyond the conformance suite: its hard time limit, its network, its environment,
reaping a dead slot actor's containers, and the errors that name the machine problem.

Everything runs against a real, private dockerd (tests/dockerd.py) and the debootstrap base image; where
neither can be had the tests skip with the reason. The GPU device request is checked on the arguments the
engine would get (no GPU here).
"""

import gc
import pickle
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from isobench_ray.config import Settings
from isobench_ray.engines.server import free_port
from isobench_ray.sandbox import SandboxUnavailable, make_sandboxes
from isobench_ray.sandbox.base import images_of
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
    opened = docker_sandboxes("net-open", writable=[tmp_path], network=True)  # host network: the control
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


def test_a_bridged_container_reaches_the_bridge_but_not_the_hosts_loopback(docker_host, docker_image, tmp_path,
                                                                           all_interfaces_server):
    addresses = _host_addresses(docker_host)
    if "docker bridge" not in addresses:
        pytest.skip("this dockerd runs without the bridge (--bridge=none)")
    factory = DockerSandboxes(host=docker_host, image=docker_image, shm_size="64m", time_limit_s=600, network_mode="bridge")
    sandbox = factory("net-bridge", writable=[tmp_path], network=True)
    try:
        port = all_interfaces_server
        assert sandbox.exec(_fetch(f"http://{addresses['docker bridge']}:{port}/"), cwd=tmp_path, timeout_s=20).ok
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
    factory = DockerSandboxes(host="unix:///fake.sock", image="engine:gpu", shm_size="16g", time_limit_s=7200)
    sandbox = factory("att1.bench", writable=[tmp_path], network=True, slot_env={"CUDA_VISIBLE_DEVICES": "2,3", "ISOBENCH_SLOT": "n/gpu2,3"})
    (request,) = calls["device_requests"]
    assert request["DeviceIDs"] == ["2", "3"] and request["Capabilities"] == [["gpu"]]
    assert calls["shm_size"] == "16g" and calls["command"] == ["sleep", "7200"] and calls["init"] and calls["auto_remove"]
    assert calls["network_mode"] == "host"
    assert sandbox._env(None, "p", None)["CUDA_VISIBLE_DEVICES"] == "0,1"  # the container's own numbering
    assert [(m["Target"], m["Source"]) for m in calls["mounts"]] == [(str(tmp_path), str(tmp_path.resolve()))]


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


def test_eviction_under_a_low_disk_threshold_removes_the_least_recently_used_unused_image(docker_host, docker_image,
                                                                                         tmp_path):
    from isobench_ray.sandbox.docker.images import ImageStore

    client = _client(docker_host)
    made = []
    try:
        for name in ("isobench-test-old", "isobench-test-new", "isobench-test-busy"):  # three images of their own
            c = client.containers.create(docker_image, ["sh", "-c", f"echo {name} > /marker"], labels={"isobench": "1"})
            made.append(c)
            made.append(c.commit(repository=name, tag="t"))
            c.remove()
        old, new, busy = (client.images.get(f"{n}:t") for n in ("isobench-test-old", "isobench-test-new", "isobench-test-busy"))
        cache = ImageStore(client, tmp_path / "usage.json", min_free_gb=1e9)  # a threshold no disk meets: evict all it may
        for image in (busy, new, old):  # recorded in this order: old is the least recently used ...
            cache.record_use(image.id)
        usage = cache.usage()
        usage[old.id], usage[new.id], usage[busy.id] = 1.0, 2.0, 3.0
        cache.usage_file.write_text(__import__("json").dumps(usage))
        running = client.containers.run(busy.id, ["sleep", "60"], detach=True, auto_remove=True, labels={"isobench": "1"})
        try:
            removed = cache.evict(keep={client.images.get(docker_image).id})  # the suite's base image stays too
            assert removed[:2] == [old.id, new.id]  # least recently used first
            assert busy.id not in removed  # a container of this node uses it
            assert client.images.get(busy.id) and cache.report()["free_gb"] is not None
        finally:
            running.kill()
    finally:
        for name in ("isobench-test-old:t", "isobench-test-new:t", "isobench-test-busy:t"):
            try:
                client.images.remove(name, force=True)
            except Exception:
                pass
        client.close()


def test_a_build_out_of_space_is_disk_full_after_one_more_eviction(docker_host, tmp_path):
    from isobench_ray.sandbox.docker.images import DiskFull, ImageStore

    client = _client(docker_host)
    cache = ImageStore(client, tmp_path / "usage.json", min_free_gb=0)
    calls = []

    def build():
        calls.append(1)
        raise RuntimeError("write /var/lib/docker/tmp/x: no space left on device")

    with pytest.raises(DiskFull, match="disk_full: .*no space left"):
        cache.make_room_then(build)
    assert len(calls) == 1  # nothing could be evicted (threshold 0): no second try
    client.close()


def test_each_arm_runs_in_the_image_of_its_commit_and_a_missing_one_is_image_missing(docker_sandboxes, docker_host,
                                                                                       docker_image, tmp_path):
    """repo.image "isobench-env:{short}": an image the engine lacks and cannot pull (no registry here) ends the
    attempt as error/image_missing before anything runs; with the repository's Dockerfile template each
    commit's image is built on first use (FROM the base: the layers base -> engine -> commit), and baseline and
    agent run in the parent's, human in its own."""
    from test_environments import _repo, _settings, _task

    from isobench_ray.schema import Attempt, BenchSlot, FailureCause, NoopSpec, StageError
    from isobench_ray.stages.benchmark import ThreeWayBenchmark

    repo, _, parent, human = _repo(tmp_path, human_touches_kernel=False)
    bench = ThreeWayBenchmark(BenchSlot(name="cpu", cpus=(0,)), _settings(tmp_path), sandboxes=docker_sandboxes)
    client = _client(docker_host)
    try:
        task = _task(repo, parent, human, image="isobench-env:{short}")
        with pytest.raises(StageError) as err:
            bench.run(Attempt.make(task, NoopSpec(name="noop"), 0, "x"), task, "")
        assert err.value.failure_cause is FailureCause.image_missing
        assert f"isobench-env:{parent[:12]}" in err.value.detail and "pulling it failed" in err.value.detail
        dockerfile = tmp_path / "env" / "Dockerfile"
        dockerfile.parent.mkdir()
        dockerfile.write_text(f"FROM {docker_image}\nARG SHORT\nENV ENGINE_BUILD=$SHORT\n")
        task = _task(repo, parent, human, image="isobench-env:{short}", dockerfile=str(dockerfile))
        measurements, logs = bench.run(Attempt.make(task, NoopSpec(name="noop"), 0, "x"), task, "")
        assert all(a.failure_cause is None for a in measurements.arms), [a.detail for a in measurements.arms]
        for arm, commit in (("baseline", parent), ("human", human), ("agent", parent)):
            assert f"engine build: {commit[:12]}" in logs[f"bench/{arm}.r0.0.log"], arm
        assert client.images.get(f"isobench-env:{human[:12]}").labels.get("isobench") == "1"
        # keyed by content: a changed template builds the commit's image again
        dockerfile.write_text(f"FROM {docker_image}\nARG SHORT\nENV ENGINE_BUILD=v2-$SHORT\n")
        _, logs = bench.run(Attempt.make(task, NoopSpec(name="noop"), 0, "y"), task, "")
        assert f"engine build: v2-{human[:12]}" in logs["bench/human.r0.0.log"]
    finally:
        for commit in (parent, human):
            try:
                client.images.remove(f"isobench-env:{commit[:12]}", force=True)
            except Exception:
                pass
        client.close()


def test_an_agent_session_runs_in_its_own_image_for_the_parent_commit(docker_sandboxes, docker_host, docker_image,
                                                                        tmp_path):
    """An agent's `image` ("isobench-agent:{short}", the engine at the parent with the agent on top) is where its
    session runs; one that is neither on the engine nor pullable is error/image_missing."""
    from test_environments import _repo, _settings, _task

    from isobench_ray.schema import Attempt, CommandSpec, FailureCause, StageError
    from isobench_ray.stages.session import run_session

    repo, _, parent, human = _repo(tmp_path, human_touches_kernel=False)
    task = _task(repo, parent, human)
    spec = CommandSpec(name="marker", command='echo "$AGENT_IMAGE" > made_in.txt', image="isobench-agent:{short}")
    settings = _settings(tmp_path).replace(**{"sandbox": "docker"})
    attempt = Attempt.make(task, spec, 0, "x")
    client = _client(docker_host)
    try:
        with pytest.raises(StageError) as err:
            run_session(attempt, task, spec, settings, sandboxes=docker_sandboxes)
        assert err.value.failure_cause is FailureCause.image_missing and f"isobench-agent:{parent[:12]}" in err.value.detail
        box = client.containers.create(docker_image, ["true"])
        box.commit("isobench-agent", parent[:12], changes=[f"ENV AGENT_IMAGE=agent-{parent[:12]}"])
        box.remove()
        session, _ = run_session(attempt, task, spec, settings, sandboxes=docker_sandboxes)
        assert session.failure_cause is None, session.detail
        assert f"+agent-{parent[:12]}" in session.patch and session.sandbox == "docker"
    finally:
        try:
            client.images.remove(f"isobench-agent:{parent[:12]}", force=True)
        except Exception:
            pass
        client.close()


@pytest.fixture
def registry(tmp_path):
    """A real registry on 127.0.0.1 (Debian's docker-registry: the CNCF distribution server), its storage under
    tmp_path; dockerd pulls from 127.0.0.0/8 over plain HTTP. Yields its host:port."""
    import shutil
    import subprocess
    import urllib.request

    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'registry'}\n"
                      f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.skip("docker-registry did not start")
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


def test_images_come_from_a_registry_and_a_missing_one_is_found_when_the_run_is_planned(docker_host, docker_image,
                                                                                        registry, tmp_path, make_settings):
    """With a real registry: an image the engine lacks is located there without pulling, and pulled on first
    use; an agent image the registry does not have is error/image_missing for every attempt that needs it
    when the run is planned, before any session runs (no session.json)."""
    import io
    import json
    import tarfile

    from isobench_ray import demo, runner
    from isobench_ray.sandbox.base import ImageMissing
    from isobench_ray.schema import CommandSpec

    client = _client(docker_host)
    pushed = f"{registry}/isobench-agent:present"
    try:
        layer = io.BytesIO()  # a one-file image: pushing and pulling it is quick (nothing runs in it)
        with tarfile.open(fileobj=layer, mode="w") as tar:
            info = tarfile.TarInfo("etc/isobench-agent")
            info.size = 6
            tar.addfile(info, io.BytesIO(b"agent\n"))
        client.api.import_image_from_data(layer.getvalue(), repository=f"{registry}/isobench-agent", tag="present")
        for line in client.images.push(f"{registry}/isobench-agent", "present", stream=True, decode=True):
            assert "error" not in line, line
        client.images.remove(pushed)
        images = images_of(DockerSandboxes(host=docker_host, cache_dir=str(tmp_path / "cache")))
        assert images.locate(pushed) == "in its registry"
        with pytest.raises(ImageMissing, match="its registry does not have it"):
            images.locate(f"{registry}/isobench-agent:absent")
        # a registry that does not answer settles nothing: the stage on the node tries again
        assert images.locate(f"127.0.0.1:{free_port()}/isobench-agent:any").startswith("not checked")
        assert images.ensure(pushed) == "pulled"
        assert images.locate(pushed) == "present"

        settings = make_settings(sandbox="docker", docker_host=docker_host, docker_image=docker_image)
        spec = CommandSpec(name="needs-image", command="true", image=f"{registry}/isobench-agent:{{short}}")
        out = tmp_path / "run"
        runner.run(str(demo.TASKS_FILE), [spec], out, settings, task_ids=["demo-detokenize-full-output"], num_cpus=2,
                   show_progress=False)
        (folder,) = (out / "attempts").iterdir()
        record = json.loads((folder / "record.json").read_text())
        assert (record["status"], record["failure_cause"], record["failure_stage"]) == ("error", "image_missing", "plan")
        assert f"{registry}/isobench-agent:" in record["detail"] and "registry does not have it" in record["detail"]
        assert not (folder / "session.json").exists()
    finally:
        try:
            client.images.remove(pushed, force=True)
        except Exception:
            pass
        client.close()


def test_the_helper_scripts_are_package_data_and_parse():
    """Every file of scripts/ ships with the package (pyproject's package-data), the container helpers
    are all in the archive each container gets, and every shell script parses."""
    import fnmatch
    import subprocess
    import tarfile
    import tomllib

    from isobench_ray.sandbox.docker import scripts

    folder = Path(scripts.__file__).parent
    globs = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = globs[scripts.__name__]
    files = sorted(p.name for p in folder.iterdir() if p.is_file())
    assert [f for f in files if not any(fnmatch.fnmatch(f, g) for g in shipped)] == []
    with tarfile.open(fileobj=__import__("io").BytesIO(scripts.helpers_archive())) as tar:
        assert sorted(tar.getnames()) == sorted(f"{scripts.HELPERS.strip('/')}/{n}" for n in scripts.IN_CONTAINER)
    for name in files:
        if name.endswith(".sh"):
            assert subprocess.run(["sh", "-n", str(folder / name)], capture_output=True).returncode == 0, name
    assert scripts.BUILD_SCRIPT.is_file()


def test_isobench_images_lists_the_node_cache_and_builds_only_what_is_missing(docker_host, docker_image, tmp_path):
    import json

    from typer.testing import CliRunner

    from isobench_ray.cli import app

    runner = CliRunner()
    listed = runner.invoke(app, ["images", "list", "--host", docker_host, "--cache-dir", str(tmp_path), "--json"])
    assert listed.exit_code == 0, listed.output
    report = json.loads(listed.output)
    assert any(docker_image in image["tags"] for image in report["images"]) and report["min_free_gb"] == 50.0
    shown = runner.invoke(app, ["images", "list", "--host", docker_host, "--cache-dir", str(tmp_path)])
    assert shown.exit_code == 0 and f"{docker_image}: " in shown.output, shown.output
    built = runner.invoke(app, ["images", "build", "--host", docker_host, "--image", docker_image])
    assert built.exit_code == 0 and f"{docker_image}: present" in built.output, built.output
    nowhere = runner.invoke(app, ["images", "list", "--host", f"unix://{tmp_path}/none.sock"])
    assert nowhere.exit_code == 1 and "cannot reach the Docker engine" in nowhere.output
