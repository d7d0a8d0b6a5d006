"""Each arm runs on the engine build of its own commit, and an arm whose tree changes compiled code that its
build lacks is `needs_rebuild`, never benchmarked unbuilt (isobench_ray/environments.py)."""

import base64
import functools
import hashlib
import os
import sys
import zipfile
from contextlib import ExitStack
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import pytest
from conftest import QUICK_BENCH, commit, serve, settings_under

from isobench_ray import wheel_envs
from isobench_ray.config import Settings
from isobench_ray.environments import compiled_changes, rebuild_reason
from isobench_ray.locks import file_lock
from isobench_ray.sandbox.local import LocalSandboxes
from isobench_ray.schema import Attempt, BenchmarkSpec, BenchSlot, BuildSpec, FailureCause, NoopSpec, RepoSpec, Session, StageError, Task
from isobench_ray.stages.benchmark import ThreeWayBenchmark
from isobench_ray.stages.validation import validate

BENCH = '''import os, sys, time
sys.path.insert(0, ".")
import fakeengine
t0 = time.perf_counter()
fakeengine.generate()
print(f"engine python: {sys.executable}")
try:  # a per-commit wheel's module, or a per-commit image's variable
    from enginebuild import COMMIT
except ImportError:
    COMMIT = os.environ.get('ENGINE_BUILD')
print(f"engine build: {COMMIT}")
print(f"Avg latency: {max(time.perf_counter() - t0, 1e-6)} seconds")
'''
ENGINE = "import time\n\ndef generate():\n    time.sleep(0.01)\n"
KERNEL_PATCH = ("diff --git a/csrc/kernel.cu b/csrc/kernel.cu\nnew file mode 100644\n--- /dev/null\n"
                "+++ b/csrc/kernel.cu\n@@ -0,0 +1 @@\n+__global__ void k() {}\n")


def _repo(tmp_path: Path, human_touches_kernel: bool) -> tuple[Path, str, str, str]:
    """build (the release an environment was made from) -> parent (Python only) -> human."""
    repo = tmp_path / "fake"
    build = commit(repo, "release", {"benchmarks/benchmark_latency.py": BENCH, "fakeengine.py": ENGINE})
    parent = commit(repo, "python only", {"fakeengine.py": ENGINE + "\n# a Python-only change\n"})
    kernel = {"csrc/kernel.cu": "__global__ void k() {}\n"} if human_touches_kernel else {}
    return repo, build, parent, commit(repo, "faster", {"fakeengine.py": ENGINE.replace("0.01", "0.005"), **kernel})


def _task(repo: Path, parent: str, human: str, **repo_fields) -> Task:
    return Task(id="fake", repo=RepoSpec(name="fake", url=str(repo), engine="vllm", import_name="fakeengine", **repo_fields),
                human_commit=human, parent_commit=parent, description="d", model="m",
                benchmark=BenchmarkSpec(kind="latency", command="python benchmarks/benchmark_latency.py", timeout_s=60))


def _settings(tmp_path: Path) -> Settings:
    return settings_under(tmp_path, **QUICK_BENCH)


def _validate(task: Task, tmp_path: Path, patch: str = "", files: tuple[str, ...] = ()):
    session = Session(attempt_id="fake.a.0.x", patch=patch, files_changed=list(files))
    return validate(Attempt(task_id="fake", agent="a", id="fake.a.0.x"), task, session, _settings(tmp_path),
                    sandboxes=LocalSandboxes())


def test_compiled_files_are_recognised_by_path():
    files = ["vllm/core/scheduler.py", "csrc/attention/attn.cu", "sgl-kernel/src/x.py", "setup.py", "docs/a.md",
             "vllm/_custom_ops.py", "CMakeLists.txt"]
    assert compiled_changes(files) == ["CMakeLists.txt", "csrc/attention/attn.cu", "setup.py", "sgl-kernel/src/x.py"]


def test_a_human_commit_that_changes_kernels_cannot_run_on_a_python_overlay(tmp_path):
    repo, build, parent, human = _repo(tmp_path, human_touches_kernel=True)
    task = _task(repo, parent, human, build=BuildSpec(commit=build))
    with pytest.raises(StageError) as err:
        _validate(task, tmp_path)
    assert err.value.failure_cause is FailureCause.needs_rebuild
    assert "human arm" in err.value.detail and "csrc/kernel.cu" in err.value.detail and build[:12] in err.value.detail
    # a build in every tree (setup_command) or a build per commit lifts it
    assert _validate(_task(repo, parent, human, build=BuildSpec(commit=build), setup_command="true"), tmp_path)[0].ok
    per_commit = _task(repo, parent, human, python=str(Path(sys.executable).parent) + "/{short}/../python")
    assert rebuild_reason(per_commit, "human", ["csrc/kernel.cu"]) is not None  # only what differs from its own commit
    assert rebuild_reason(_task(repo, parent, human), "human", ["csrc/kernel.cu"]) is None  # nothing said: not checked


def test_a_python_only_agent_patch_runs_on_the_overlay_and_a_kernel_patch_does_not(tmp_path):
    repo, build, parent, human = _repo(tmp_path, human_touches_kernel=False)
    task = _task(repo, parent, human, build=BuildSpec(commit=build))
    assert _validate(task, tmp_path)[0].ok  # parent and human differ from the build in Python only
    with pytest.raises(StageError) as err:
        _validate(task, tmp_path, KERNEL_PATCH, ("csrc/kernel.cu",))
    assert err.value.failure_cause is FailureCause.needs_rebuild and "agent arm" in err.value.detail


def test_each_arm_runs_in_the_environment_of_its_own_commit(tmp_path):
    repo, _, parent, human = _repo(tmp_path, human_touches_kernel=False)
    envs = tmp_path / "envs"
    for sha in (parent, human):  # two "installed builds", one per commit
        (envs / sha[:12] / "bin").mkdir(parents=True)
        os.symlink(sys.executable, envs / sha[:12] / "bin" / "python")
    task = _task(repo, parent, human, python=str(envs / "{short}" / "bin" / "python"))
    bench = ThreeWayBenchmark(BenchSlot(name="cpu", cpus=(0,)), _settings(tmp_path), sandboxes=LocalSandboxes())
    measurements, logs = bench.run(Attempt.make(task, NoopSpec(name="noop"), 0, "x"), task, "")
    assert all(a.failure_cause is None for a in measurements.arms), [a.detail for a in measurements.arms]
    for arm, sha in (("baseline", parent), ("human", human), ("agent", parent)):
        assert f"engine python: {envs / sha[:12] / 'bin' / 'python'}" in logs[f"bench/{arm}.r0.0.log"], arm


def _wheel(folder: Path, commit: str) -> Path:
    """A real (pure-Python) wheel of the module `enginebuild`, which says which commit it was built at."""
    name = "enginebuild-1.0-py3-none-any.whl"
    files = {"enginebuild/__init__.py": f"COMMIT = {commit[:12]!r}\n",
             "enginebuild-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: enginebuild\nVersion: 1.0\n",
             "enginebuild-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files["enginebuild-1.0.dist-info/RECORD"] = "\n".join(record + ["enginebuild-1.0.dist-info/RECORD,,"]) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / name, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return folder / name


@pytest.fixture
def wheel_host(tmp_path):
    """A real HTTP server on 127.0.0.1 publishing wheels under <short commit>/, as wheels.vllm.ai does."""
    root = tmp_path / "published"
    root.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

    with serve(functools.partial(Quiet, directory=str(root))) as server:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"


def test_each_arm_gets_its_commits_published_wheel_and_an_unpublished_one_is_build_missing(tmp_path, wheel_host):
    root, url = wheel_host
    repo, _, parent, human = _repo(tmp_path, human_touches_kernel=True)  # compiled changes: fine with a build per commit
    task = _task(repo, parent, human, wheel=url + "/{short}/enginebuild-1.0-py3-none-any.whl")
    settings = _settings(tmp_path)
    bench = ThreeWayBenchmark(BenchSlot(name="cpu", cpus=(0,)), settings, sandboxes=LocalSandboxes())
    attempt = Attempt.make(task, NoopSpec(name="noop"), 0, "x")
    _wheel(root / parent[:12], parent)
    assert _validate(task, tmp_path)[0].ok  # validation needs only the parent's
    with pytest.raises(StageError) as err:  # nothing published for the human commit
        bench.run(attempt, task, "")
    assert err.value.failure_cause is FailureCause.build_missing and human[:12] in err.value.detail
    _wheel(root / human[:12], human)
    measurements, logs = bench.run(attempt, task, "")
    assert all(a.failure_cause is None for a in measurements.arms), [a.detail for a in measurements.arms]
    for arm, sha in (("baseline", parent), ("human", human), ("agent", parent)):
        assert f"engine build: {sha[:12]}" in logs[f"bench/{arm}.r0.0.log"], arm
    envs = sorted(p.name for p in (settings.paths.cache / "envs").iterdir() if p.is_dir())
    assert envs == sorted([f"fake-{parent[:12]}", f"fake-{human[:12]}"])  # one per commit, made once, reused


def test_under_the_disk_threshold_unused_environments_go_and_held_ones_stay(tmp_path):
    root = tmp_path / "envs"
    for name in ("old", "held", "new"):
        (root / name).mkdir(parents=True)
        (root / name / wheel_envs.STAMP).write_text("x")
    os.utime(root / "old" / wheel_envs.STAMP, (1, 1))  # least recently used
    with ExitStack() as stack:
        stack.enter_context(file_lock((root / "held").with_suffix(".use"), shared=True))
        assert wheel_envs.evict_unused(root, min_free_gb=1e9, keep=root / "new") == ["old"]
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["held", "new"]
    assert wheel_envs.evict_unused(root, min_free_gb=0) == []  # enough space: nothing goes


def test_a_wheel_environment_under_the_docker_sandbox_is_refused_when_planned(tmp_path):
    """A per-commit wheel is installed on the node, which containers do not see: refused before anything runs,
    naming the task and the field, with what to do instead."""
    from isobench_ray.runner import PlanError, check_environments

    task = _task(tmp_path, "a" * 40, "b" * 40, wheel="https://wheels.example/{commit}/engine-1.0-py3-none-any.whl")
    task = task.model_copy(update={"source": "tasks/x.yaml"})
    check_environments([task], _settings(tmp_path))  # local processes see the node's environments
    with pytest.raises(PlanError, match=r"tasks/x.yaml: task fake: repo.wheel: .*\n.*repo.image"):
        check_environments([task], _settings(tmp_path).replace(**{"sandbox": "docker"}))


def test_an_lm_eval_folder_the_containers_cannot_see_is_refused_when_planned(tmp_path):
    """lm-eval runs in the arm's container: its task folder must be inside a docker mount."""
    from isobench_ray.runner import PlanError, check_environments

    include = tmp_path / "lm_eval_tasks"
    include.mkdir()
    docker = _settings(tmp_path).replace(**{"sandbox": "docker", "check_correctness": True,
                                                    "lm_eval_include_path": str(include)})
    with pytest.raises(PlanError, match="lm_eval_include_path: .* not inside any docker_mounts"):
        check_environments([], docker)
    check_environments([], docker.replace(**{"docker_mounts": (str(tmp_path),)}))


def test_a_measurement_setting_newer_than_the_run_counts_as_its_default(tmp_path):
    """A run made before a measurement setting existed ran with its default: resuming it with the default is
    no change; with another value it is."""
    import json

    from isobench_ray.runner import changed_settings, measurement_identity

    settings = _settings(tmp_path)
    before = settings.identity()
    del before["lm_eval_seed"]
    (tmp_path / "run.json").write_text(json.dumps({"identity": {"measurement": before}}))
    assert changed_settings(tmp_path, measurement_identity(settings)) == []
    assert changed_settings(tmp_path, measurement_identity(settings.replace(**{"lm_eval_seed": 7}))) == [
        "lm_eval_seed: 1234 in the run, 7 now"]


def test_an_edited_lm_eval_task_folder_is_a_changed_setting(tmp_path):
    """The accuracies depend on the task YAMLs in lm_eval_include_path, not only on its path: a folder edited
    between two runs stops the resume, like any other measurement setting."""
    import json

    from isobench_ray.runner import changed_settings, measurement_identity

    include = tmp_path / "lm_eval_tasks"
    include.mkdir()
    (include / "arith.yaml").write_text("task: arith\nnum_fewshot: 0\n")
    settings = _settings(tmp_path).replace(**{"lm_eval_include_path": str(include)})
    (tmp_path / "run.json").write_text(json.dumps({"identity": {"measurement": measurement_identity(settings)}}))
    assert changed_settings(tmp_path, measurement_identity(settings)) == []
    (include / "arith.yaml").write_text("task: arith\nnum_fewshot: 5\n")
    changed = changed_settings(tmp_path, measurement_identity(settings))
    assert len(changed) == 1 and changed[0].startswith("lm_eval_include_content: ")
