"""The Docker sandbox's images: the node's cache (LRU eviction, a full disk), each commit's image built from
its Dockerfile template, an agent's own image, a real registry located and pulled from before and during a
run, the helper scripts as package data, and `isobench images`.

Everything runs against a real, private dockerd (tests/dockerd.py) and the debootstrap base image; where
neither can be had the tests skip with the reason.
"""

import time
from pathlib import Path

import pytest

from isobench_ray.engines.server import free_port
from isobench_ray.sandbox.base import images_of
from isobench_ray.sandbox.docker import DockerSandboxes

pytest_plugins = ["dockerd"]  # docker_host, docker_image, docker_sandboxes: one dockerd for the whole session


def _client(url):
    import docker

    return docker.DockerClient(base_url=url, timeout=60)


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
