"""Hostile agents, broken tasks, a fragile run directory: each case for real (processes, git, HTTP, files).

An agent is a program written by a model whose goal is to make numbers go up; its inputs (task files,
other people's predictions) are often broken. Nothing escapes, nothing is lost, every error names its cause.
"""

import gzip
import json
import os
import shutil
import socket
import time
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from isobench_ray import runner
from isobench_ray.agents import AgentConfigError, parse_agents
from isobench_ray.cli import app
from isobench_ray.engines import GENERIC
from isobench_ray.engines.base import BadMetrics
from isobench_ray.sandbox import make_sandboxes
from isobench_ray.sandbox.local import LocalSandboxes
from isobench_ray.schema import AGENT_SPEC, Attempt, BenchmarkSpec, FailureCause, RepoSpec, Session, StageError, Task
from isobench_ray.stages.session import run_session
from isobench_ray.stages.validation import validate
from isobench_ray.store import RunDirBusy, RunLock, RunStore

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
pytest_plugins = ["dockerd", "outside"]  # a private dockerd; the outside world and a Ray head (tests/outside.py)


def _task(repo: dict, **repo_fields) -> Task:
    return Task(id="tiny-sum", repo=RepoSpec(name="tiny", url=str(repo["path"]), **repo_fields), human_commit=repo["human"],
                parent_commit=repo["parent"], description="work() is slow for large n",
                benchmark=BenchmarkSpec(kind="latency", command="python benchmarks/benchmark_latency.py --model m"))


def _session(task, settings, command, **spec):
    agent = AGENT_SPEC.validate_python(dict(name="evil", kind="command", command=command, **spec))
    from isobench_ray.agents import make_agent

    attempt = Attempt.make(task, agent, 0, make_agent(agent).fingerprint(task))
    return run_session(attempt, task, agent, settings, sandboxes=make_sandboxes(settings))


# ---------------------------------------------------------------- agents contained


@pytest.fixture
def outside_tmp():
    """A folder outside /tmp (which the sandbox makes private anyway), so hiding is really tested."""
    import tempfile

    path = Path(tempfile.mkdtemp(dir=Path.home(), prefix=".isobench-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@needs_bwrap
def test_an_agent_sees_no_secret_no_mirror_no_history_and_cannot_write_outside(tiny_repo, tmp_path, outside_tmp, monkeypatch, make_settings):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-of-the-user")
    repo = outside_tmp / "tiny"
    shutil.copytree(tiny_repo["path"], repo)
    settings = make_settings(outside_tmp)
    outside = outside_tmp / "outside"
    outside.mkdir()
    mirrors = Path(settings.paths.cache_dir) / "mirrors"
    script = (f"env > seen_env.txt; ls -a {mirrors} > seen_mirrors.txt 2>&1; "
              f"git -C {repo} log --format=%H > seen_history.txt 2>&1; "
              f"echo pwned > {outside}/pwned.txt; echo edit >> tiny/__init__.py")
    session, _ = _session(_task({**tiny_repo, "path": repo}), settings, script, env={"GIVEN": "1"})
    assert "GIVEN=1" in session.patch
    assert "sk-secret-of-the-user" not in session.patch and "OPENAI_API_KEY" not in session.patch
    seen = session.patch.split("+++ b/seen_mirrors.txt")[1].split("diff --git")[0]
    assert mirrors.is_dir() and any(m.name.endswith(".git") for m in mirrors.iterdir()) and ".git" not in seen, seen
    assert "seen_history.txt" in session.patch and tiny_repo["human"] not in session.patch  # the answer is out of reach
    assert not (outside / "pwned.txt").exists()


@needs_bwrap
def test_an_agent_without_network_cannot_reach_a_local_port(tiny_repo, tmp_path, http_server, make_settings):
    fetch = f"python -c \"import urllib.request; print(urllib.request.urlopen('{http_server}', timeout=3).read())\" > got.txt 2>&1"
    session, _ = _session(_task(tiny_repo), make_settings(), fetch)
    assert "got.txt" in session.patch and "hello from the host" not in session.patch
    assert "URLError" in session.patch  # the fetch ran, and the network refused it


@needs_bwrap
def test_a_child_that_drops_its_tag_and_leaves_its_session_is_gone(tiny_repo, tmp_path, make_settings):
    # the child writes its pid and becomes the sleep; the agent waits for it and records that it is alive
    script = ("env -u ISOBENCH_TAG -u ISOBENCH_PROC setsid sh -c 'echo $$ > child.pid; exec sleep 313' > /dev/null 2>&1 & "
              "for _ in $(seq 100); do [ -s child.pid ] && break; sleep 0.05; done; "
              "kill -0 \"$(cat child.pid)\" && echo alive > child-alive.txt; echo x >> tiny/__init__.py")
    session, _ = _session(_task(tiny_repo), make_settings(), script)
    assert "child-alive.txt" in session.patch, session.patch  # the child really ran, alive as the agent finished
    time.sleep(0.3)
    assert not [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "313"]]


# ---------------------------------------------------------------- real boundaries (the cases 1, 2 and 9)


def _seen(patch: str, name: str) -> str:
    return patch.split(f"+++ b/{name}")[1].split("diff --git")[0] if f"+++ b/{name}" in patch else ""


@needs_bwrap
def test_case_1_root_in_bubblewrap_cannot_unmount_remount_or_read_the_harness(tiny_repo, outside_tmp, make_settings):
    """Bubblewrap run by root kept every capability: the agent unmounted the private /tmp and the cache's mask to
    list the mirrors (the human fix), remounted / read-write and wrote on the host; other caches, the checkout
    and /etc/shadow were readable. Now: no capability in its own user namespace, an allow-listed file system."""
    repo = outside_tmp / "tiny"
    shutil.copytree(tiny_repo["path"], repo)
    settings = make_settings(outside_tmp)  # the cache (mirrors) and work folder outside /tmp, as on a real node
    mirrors, outside, other = Path(settings.paths.cache_dir) / "mirrors", outside_tmp / "outside", outside_tmp / "other-cache"
    for folder in (outside, other):
        folder.mkdir()
    (other / "token").write_text("another tool's secret")
    checkout = Path(__file__).resolve().parents[1]
    script = (f"umount -l /tmp; umount -l {settings.paths.cache_dir}; umount /etc/shadow; mount -o remount,rw,bind /; mount -o remount,rw /; "
              f"ls -a {mirrors} > seen_mirrors.txt 2>&1; echo pwned > {outside}/pwned.txt; "
              f"cat /etc/shadow {other}/token > seen_secrets.txt 2>&1; ls -a {checkout} > seen_checkout.txt 2>&1; "
              "echo edit >> tiny/__init__.py")
    session, logs = _session(_task({**tiny_repo, "path": repo}), settings, script)
    assert "+edit" in session.patch, session  # the agent ran, and its edit is its patch
    assert mirrors.is_dir() and any(m.name.endswith(".git") for m in mirrors.iterdir())
    assert "seen_mirrors.txt" in session.patch and ".git" not in _seen(session.patch, "seen_mirrors.txt")
    secrets = _seen(session.patch, "seen_secrets.txt")
    assert "seen_secrets.txt" in session.patch and "root:" not in secrets and "another tool" not in secrets, secrets
    assert "pyproject.toml" not in _seen(session.patch, "seen_checkout.txt")
    assert not (outside / "pwned.txt").exists()


@pytest.mark.slow  # a Ray head with its dashboard
@pytest.mark.parametrize("kind", [pytest.param("bwrap", marks=needs_bwrap), "docker"])
def test_case_2_an_agent_with_network_cannot_reach_rays_job_api(kind, request, tiny_repo, outside_tmp, ray_head, make_settings):
    """With `network: true` the agent shared the host's network, posted a job to the dashboard agent's job API on
    127.0.0.1 and had a root command run on the host. Now the sandbox's network never reaches the host."""
    extra = {} if kind == "bwrap" else dict(sandbox="docker", docker_host=request.getfixturevalue("docker_host"),
                                            docker_image=request.getfixturevalue("docker_image"))
    marker, ports, ip = outside_tmp / "job-ran", ray_head, ray_head["node_ip"]
    urls = [f"http://127.0.0.1:{ports['dashboard']}/api/jobs/", f"http://127.0.0.1:{ports['agent']}/api/job_agent/jobs/",
            f"http://{ip}:{ports['agent']}/api/job_agent/jobs/", f"tcp://127.0.0.1:{ports['gcs']}", f"tcp://{ip}:{ports['gcs']}"]
    assert ray_head["answers"](f"http://127.0.0.1:{ports['dashboard']}/api/version")  # live, open to the host's processes
    session, _ = _session(_task(tiny_repo), make_settings(**extra), "python3 -c \"$ATTACK\" > attack.txt 2>&1; echo x >> tiny/__init__.py",
                          network=True, env={"ATTACK": ray_head["attack"], "MARKER": str(marker), "URLS": " ".join(urls)})
    seen = json.loads(_seen(session.patch, "attack.txt").splitlines()[-1][1:])
    assert set(seen) == set(urls), seen  # every door was tried
    assert [url for url, how in seen.items() if isinstance(how, int) or how == "connected"] == [], seen
    time.sleep(3)  # a job that got through would have written its marker by now
    assert not marker.exists()


def test_case_9_containers_end_with_their_driver_and_hold_no_bomb(docker_host, docker_image, tmp_path):
    """Containers outlived a killed driver by 24 h, no later run removed them, a fork bomb filled the process
    table, /tmp was unbounded. Now: limits, the driver's labels, a deadline only it pushes, `isobench clean`."""
    import docker
    from dockerd import FORK_BOMB, killed_driver

    from isobench_ray.sandbox.docker import DockerSandboxes

    limited = DockerSandboxes(host=docker_host, image=docker_image, shm_size="64m", cache_dir=str(tmp_path), pids_limit=128,
                              memory="256m", tmp_size="16m")("case9-limits", writable=[tmp_path], network=False)
    try:
        bomb = limited.exec(["python3", "-c", FORK_BOMB, "2000"], cwd=tmp_path, timeout_s=60)
        assert bomb.ok and 0 < int(bomb.output.split()[-1]) < 128, bomb.output
        assert "No space left" in limited.exec("head -c 64000000 /dev/zero > /tmp/fill", cwd=tmp_path, timeout_s=60).output
        assert limited.exec(["python3", "-c", "b = bytearray(600 << 20)"], cwd=tmp_path, timeout_s=60).returncode == 137
    finally:
        limited.cleanup()
    client = docker.DockerClient(base_url=docker_host)
    alone, ident, pid = killed_driver(docker_host, docker_image, tmp_path, 5)
    labels = client.containers.get(alone).labels
    assert labels["isobench.run"] == "case9-run" and labels["isobench.driver"] == ident and f"/{pid}/" in ident
    deadline = time.monotonic() + 60  # its deadline no longer pushed: gone by itself, no later run or clean needed
    while client.containers.list(all=True, filters={"name": alone}) and time.monotonic() < deadline:
        time.sleep(1)
    assert not client.containers.list(all=True, filters={"name": alone}), "outlived its dead driver's margin"
    first = killed_driver(docker_host, docker_image, tmp_path, 900)[0]
    second = killed_driver(docker_host, docker_image, tmp_path, 900)[0]  # the next run: its first container clears
    assert not client.containers.list(all=True, filters={"name": first}) and client.containers.list(filters={"name": second})
    cleaned = CliRunner().invoke(app, ["clean", "--host", docker_host, "--cache-dir", str(tmp_path)])
    assert cleaned.exit_code == 0 and second in cleaned.output, cleaned.output
    assert not client.containers.list(all=True, filters={"name": second})


def test_hooks_and_config_the_agent_writes_in_its_git_never_run(tiny_repo, tmp_path, make_settings):
    """The patch comes from the harness's own git directory outside the tree: the agent's .git (its hooks,
    its config, its commits, even its destruction) changes nothing the harness runs or sees."""
    marker = tmp_path / "hook-ran"
    script = (f"printf '#!/bin/sh\\ntouch {marker}\\n' > .git/hooks/post-index-change; chmod +x .git/hooks/post-index-change; "
              f"cp .git/hooks/post-index-change .git/fsmon.sh; git config core.fsmonitor \"$PWD/.git/fsmon.sh\"; "
              f"git config core.hooksPath \"$PWD/.git/hooks\"; echo edit >> tiny/__init__.py; "
              f"git -c core.fsmonitor=false -c core.hooksPath=/dev/null commit -qam 'agent commit'; "
              f"echo more >> tiny/__init__.py; rm -rf .git/objects")
    session, _ = _session(_task(tiny_repo), make_settings(isolate_agents=False), script)
    assert "+edit" in session.patch and "+more" in session.patch  # committed or not, all in the patch
    assert not marker.exists()


def test_agents_that_run_code_are_refused_without_isolation(tiny_repo, tmp_path, monkeypatch, make_settings):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no bubblewrap here; refused before anything runs
    agents = [AGENT_SPEC.validate_python(dict(name="cli", kind="command", command="true"))]
    tasks_file = tmp_path / "t.yaml"
    tasks_file.write_text(json.dumps({"repos": {"tiny": {"url": str(tiny_repo["path"]), "server_command": "x {port}"}},
                                      "tasks": [{"id": "t1", "repo": "tiny", "human_commit": tiny_repo["human"],
                                                 "parent_commit": tiny_repo["parent"], "description": "d", "model": "m",
                                                 "benchmark": {"kind": "latency", "command": "python benchmarks/benchmark_latency.py --model m"}}]}))
    with pytest.raises(runner.PlanError, match="--sandbox none"):
        runner.run(str(tasks_file), agents, tmp_path / "run", make_settings())


# ---------------------------------------------------------------- numbers checked at the boundary


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1"])
def test_a_metric_that_is_not_a_positive_number_is_bad_metrics(value):
    text = (f"Avg latency: {value} seconds\n10% percentile latency: 0.1 seconds\n")
    with pytest.raises(BadMetrics, match=f"avg_latency.*{value}|{value}.*avg_latency"):
        GENERIC.parse(text)


def test_zero_failed_requests_is_a_valid_zero():
    text = """============ Serving Benchmark Result ============
Successful requests:                     10
Failed requests:                         0
Benchmark duration (s):                  1.00
Total input tokens:                      100
Total generated tokens:                  100
Request throughput (req/s):              10.00
Output token throughput (tok/s):         100.00
Total Token throughput (tok/s):          200.00
==================================================
"""
    assert GENERIC.parse(text)["failed"] == 0


def test_a_record_cannot_hold_nan():
    from isobench_ray.schema import Run

    with pytest.raises(ValueError, match="finite"):
        Run(arm="agent", round=0, metrics={"avg_latency": float("nan")})


# ---------------------------------------------------------------- names that cannot become paths


def test_an_agent_name_from_a_predictions_file_cannot_leave_the_run_dir(tmp_path):
    preds = tmp_path / "preds.jsonl"
    preds.write_text(json.dumps({"instance_id": "t1", "model_patch": "x", "model_name_or_path": "../../../etc/evil"}) + "\n")
    [spec] = parse_agents(f"replay:{preds}")
    assert "/" not in spec.name and ".." not in spec.name and spec.model_name == "../../../etc/evil"
    with pytest.raises(ValueError):
        AGENT_SPEC.validate_python(dict(name="../x", kind="noop"))


def test_malformed_prediction_lines_and_binary_patches_name_the_file(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instance_id": "t1", "model_patch": "x"}\nnot json\n')
    with pytest.raises(AgentConfigError, match=r"bad.jsonl:2"):
        parse_agents(f"replay:{bad}#m")
    binary = tmp_path / "b.diff"
    binary.write_bytes(b"\xff\xfe\x00\x81binary")
    with pytest.raises(AgentConfigError, match=r"b.diff: not a text patch"):
        parse_agents(f"replay:{binary}")


# ---------------------------------------------------------------- broken tasks, found at plan time


def _tasks_file(tmp_path, url, human, parent, **extra) -> Path:
    import yaml

    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump({"repos": {"tiny": {"url": url, "server_command": "python -m http.server {port}", **extra.pop("repo", {})}},
                                    "tasks": [{"id": "t1", "repo": "tiny", "human_commit": human, "parent_commit": parent,
                                               "description": "d", "model": "m",
                                               "benchmark": {"kind": "latency", "command": "python benchmarks/benchmark_latency.py --model m",
                                                             **extra}}]}))
    return path


def test_tasks_validate_finds_a_missing_commit_and_a_missing_repository(tiny_repo, tmp_path, monkeypatch):
    monkeypatch.setenv("ISOBENCH_CACHE_DIR", str(tmp_path / "cache"))
    cli = CliRunner()
    missing_commit = _tasks_file(tmp_path, str(tiny_repo["path"]), "0" * 40, tiny_repo["parent"])
    res = cli.invoke(app, ["tasks", "validate", str(missing_commit)])
    assert res.exit_code == 1 and "commit_missing" in res.output and "0" * 12 in res.output, res.output
    (tmp_path / "b").mkdir()
    missing_repo = _tasks_file(tmp_path / "b", str(tmp_path / "no-such-repo"), tiny_repo["human"], tiny_repo["parent"])
    res = cli.invoke(app, ["tasks", "validate", str(missing_repo)])
    assert res.exit_code == 1 and "repo_missing" in res.output and "no-such-repo" in res.output, res.output


@pytest.mark.parametrize("extra, field", [
    ({"timeout_s": -5}, "benchmark.timeout_s"),
    ({"primary_metric": "vibes"}, "benchmark.primary_metric"),
    ({"command": "python /etc/benchmark_latency.py --model m"}, "benchmark.command"),
    ({"repo": {"import_name": "os; import shutil"}}, "repo.import_name"),
    ({"repo": {"server_command": "python -m x --json '{\"a\": 1}' --port 8000"}}, "repo.server_command"),
])
def test_bad_task_fields_are_named(tiny_repo, tmp_path, extra, field):
    from isobench_ray.tasks import load_tasks

    result = load_tasks(_tasks_file(tmp_path, str(tiny_repo["path"]), tiny_repo["human"], tiny_repo["parent"], **extra))
    assert not result.tasks
    assert any(p.field == field for p in result.errors), [str(p) for p in result.problems]


def test_a_repository_url_into_system_directories_is_refused(tiny_repo, tmp_path):
    from isobench_ray.tasks import load_tasks

    result = load_tasks(_tasks_file(tmp_path, "../../../../../../etc", tiny_repo["human"], tiny_repo["parent"]))
    assert not result.tasks and any(p.field == "repo.url" for p in result.errors)


def test_a_parent_whose_server_never_starts_is_the_tasks_error(tiny_repo, tmp_path, make_settings):
    task = _task(tiny_repo, server_command="python -c 'import time; time.sleep(60)' {port}")
    task = task.model_copy(update={"benchmark": BenchmarkSpec(kind="serving", command="python benchmarks/benchmark_serving.py --model m")})
    session = Session(attempt_id="a", patch="", files_changed=[])
    with pytest.raises(StageError) as err:
        validate(Attempt(task_id="tiny-sum", agent="human", id="tiny-sum.human.0.x"), task, session,
                 make_settings(server_start_timeout_s=2), sandboxes=LocalSandboxes())
    assert err.value.failure_cause is FailureCause.baseline_failed and "parent commit" in err.value.detail


# ---------------------------------------------------------------- a run directory that survives


def test_a_truncated_record_is_named_moved_aside_and_redone(tmp_path, capsys):
    from isobench_ray.schema import AttemptRecord, Status

    store = RunStore(tmp_path)
    attempt = Attempt(task_id="t", agent="a", id="t.a.0.x")
    store.save_stage(attempt.id, "record", AttemptRecord(attempt=attempt, status=Status.success))
    path = store.attempt_dir(attempt.id) / "record.json"
    path.write_text(path.read_text()[:40])
    fresh = RunStore(tmp_path)
    assert fresh.load_stage(attempt.id, "record") is None  # redone
    assert not path.exists() and list(path.parent.glob("record.json.unreadable-*"))
    assert fresh.records() == []
    assert str(path) in capsys.readouterr().err


def test_a_second_driver_on_the_same_run_dir_is_refused(tmp_path, make_settings):
    with RunLock(tmp_path / "run"):
        with pytest.raises(RunDirBusy, match=rf"pid {os.getpid()} on {socket.gethostname()}"):
            with RunLock(tmp_path / "run"):
                pass
        with pytest.raises(runner.PlanError, match="in use by another isobench driver"):  # before anything is read
            runner.run(str(tmp_path / "no-tasks.yaml"), parse_agents("noop"), tmp_path / "run", make_settings())
    with RunLock(tmp_path / "run"):  # released: the next one gets it
        pass


def test_a_100mb_file_in_the_tree_is_patch_too_large_kept_once_compressed(tiny_repo, tmp_path, make_settings):
    session, logs = _session(_task(tiny_repo), make_settings(isolate_agents=False),
                             "head -c 100000000 /dev/zero > big.bin; echo edit >> tiny/__init__.py")
    assert session.failure_cause is FailureCause.patch_too_large and session.patch == ""
    assert "patch.diff" not in logs
    kept = logs["patch.diff.gz"]
    assert isinstance(kept, bytes) and len(kept) < 1_000_000
    assert b"big.bin" in gzip.decompress(kept)[:100_000]


def test_every_real_benchmark_output_passes_the_number_check():
    """The boundary check refuses nothing a real vLLM or SGLang run printed (TPOT 0.00 ms with one token is real)."""
    from isobench_ray.engines.parsing import NoMetricsError

    checked = 0
    for path in sorted((Path(__file__).parent / "fixtures" / "bench_outputs").iterdir()):
        if path.name.endswith(".expected.json") or path.suffix == ".md":
            continue
        text = path.read_text(errors="replace")
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        try:
            GENERIC.parse(None if data is not None else text, data)
            checked += 1
        except NoMetricsError:
            assert "error" in path.name  # the one fixture of a benchmark that died on its arguments
    assert checked >= 20


def test_every_failure_cause_is_documented_with_its_fault_and_rerun():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "failure-causes.md").read_text()
    for cause in FailureCause:
        row = next((line for line in doc.splitlines() if line.startswith(f"| `{cause.value}` |")), None)
        assert row is not None, cause
        assert any(f"| {fault} |" in row for fault in ("agent", "task", "machine")), row


def test_a_server_template_fills_only_model_host_and_port():
    from isobench_ray.engines import engine_named

    template = "VLLM_CPU_KVCACHE_SPACE=${KV:-1} vllm serve {model} --host {host} --port {port} --json '{\"a\": {\"b\": 1}}'"
    command = engine_named("vllm").server_command(template, model="m", host="127.0.0.1", port=8123)
    assert command == "VLLM_CPU_KVCACHE_SPACE=${KV:-1} vllm serve m --host 127.0.0.1 --port 8123 --json '{\"a\": {\"b\": 1}}'"



def test_the_default_vllm_server_takes_the_form_of_the_trees_version(tmp_path):
    """vLLM trees with the `vllm` CLI get `vllm serve` (as a module of the arm's interpreter); older ones the
    api_server module; a task's own template is never rewritten. Server flags moved from the client stay."""
    from isobench_ray.engines import engine_named

    vllm = engine_named("vllm")
    old, new = tmp_path / "old", tmp_path / "new"
    (new / "vllm" / "entrypoints" / "cli").mkdir(parents=True)
    (new / "vllm" / "entrypoints" / "cli" / "main.py").write_text("")
    old.mkdir()
    default = vllm.server_template + " --dtype float16"  # as the loader fills it in
    kw = dict(model="m", host="127.0.0.1", port=8000)
    assert vllm.server_command(default, tree=new, **kw) == \
        "python -m vllm.entrypoints.cli.main serve m --host 127.0.0.1 --port 8000 --dtype float16"
    assert vllm.server_command(default, tree=old, **kw).startswith("python -m vllm.entrypoints.openai.api_server --model m")
    own = "vllm serve {model} --host {host} --port {port} --enforce-eager"
    assert vllm.server_command(own, tree=new, **kw) == "vllm serve m --host 127.0.0.1 --port 8000 --enforce-eager"

def test_an_engine_environment_is_what_python_means_in_validation_and_every_arm(tiny_repo, tmp_path):
    """RepoSpec.python: its folder goes first on PATH for the task's commands; RepoSpec.env is set."""

    from isobench_ray.config import Settings
    from isobench_ray.sandbox import make_sandboxes
    from isobench_ray.tasks import load_tasks

    engine = tmp_path / "engine-env" / "bin"
    engine.mkdir(parents=True)
    (engine / "python").write_text("#!/bin/sh\necho \"engine python: $ENGINE_FLAG\"\n")
    (engine / "python").chmod(0o755)
    path = _tasks_file(tmp_path, str(tiny_repo["path"]), tiny_repo["human"], tiny_repo["parent"],
                       repo={"python": "engine-env/bin/python", "env": {"ENGINE_FLAG": "on"}})
    task = load_tasks(str(path)).tasks[0]
    assert task.repo.python == str(engine / "python")  # relative to the task file
    sandbox = make_sandboxes(Settings())("t", writable=[tmp_path], network=False,
                                          env=task.engine_env(os.environ.get("PATH", os.defpath)))
    try:
        res = sandbox.exec("python -c 'import sys'", cwd=tmp_path, timeout_s=30)
    finally:
        sandbox.cleanup()
    assert res.output.strip() == "engine python: on"
    missing = load_tasks(str(_tasks_file(tmp_path, str(tiny_repo["path"]), tiny_repo["human"], tiny_repo["parent"],
                                         repo={"python": "/nowhere/bin/python"})))
    assert not missing.tasks and missing.problems[0].field == "repo.python"
