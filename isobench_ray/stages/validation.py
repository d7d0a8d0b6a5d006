"""Stage 2, validation: cheap checks before any benchmark slot is spent on a patch.

In the sandbox where arms run: the patch applies to a fresh tree at the parent commit, the changed Python
files compile, the package imports, and (for serving tasks) the server starts and answers its readiness path.
First, each arm's tree must be able to run on its engine build (environments.py): one that changes
compiled code its build lacks is an error `needs_rebuild`, never a benchmark of unbuilt code.
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from pathlib import Path

from isobench_ray.config import Settings
from isobench_ray.engines import engine_named
from isobench_ray.engines.server import launch
from isobench_ray.environments import build_commit, prepare, rebuild_reason
from isobench_ray.sandbox.base import ExecResult, ImageMissing, Sandbox, SandboxFactory
from isobench_ray.schema import ARMS, Attempt, Check, FailureCause, Session, StageError, Task, Validation
from isobench_ray.stages.bench_context import arm_sandbox
from isobench_ray.text import log_tail
from isobench_ray.workspace import PatchApplyError, apply_patch, detached_tree, files_between, links_on_path, mirror, scratch


def validate(attempt: Attempt, task: Task, session: Session, settings: Settings, *,
             sandboxes: SandboxFactory) -> tuple[Validation, dict[str, str]]:
    logs: dict[str, str] = {}
    started = time.monotonic()
    mirror_path = mirror(task.repo.url, settings.paths.cache, needed_commits(task))
    for arm in ARMS:
        built_at = build_commit(task, arm)
        if built_at is not None:
            changed = files_between(mirror_path, built_at, task.arm_commit(arm))
            if reason := rebuild_reason(task, arm, changed + (session.files_changed if arm == "agent" else [])):
                raise StageError(FailureCause.needs_rebuild, reason)
    with scratch(settings.paths.work, attempt.id, "validate") as base, ExitStack() as held:
        env, image = prepare(task, task.parent_commit, settings, sandboxes, held)  # the agent's arm: the parent's
        try:
            sandbox = arm_sandbox(sandboxes, settings, task, f"{attempt.id}.validate", [base], env=env, image=image)
        except ImageMissing as exc:
            raise StageError(FailureCause.image_missing, str(exc)) from None
        try:
            checks, method, cause = _run_checks(sandbox, task, session, settings, base, logs, mirror_path)
        finally:
            sandbox.cleanup()
    return Validation(attempt_id=attempt.id, checks=checks, failure_cause=cause, apply_method=method,
                      duration_s=time.monotonic() - started), logs


def needed_commits(task: Task) -> tuple[str, ...]:
    return (task.parent_commit, task.human_commit, *([task.repo.build.commit] if task.repo.build else []))


def _check(checks: list[Check], name: str, started: float, ok: bool, detail: str) -> bool:
    checks.append(Check(name=name, ok=ok, detail=detail, duration_s=time.monotonic() - started))
    return ok


def _run_checks(sandbox: Sandbox, task: Task, session: Session, settings: Settings, base: Path,
                logs: dict[str, str], mirror_path: Path) -> tuple[list[Check], str | None, FailureCause | None]:
    checks: list[Check] = []
    tree = detached_tree(mirror_path, task.parent_commit, base / "tree")
    t0 = time.monotonic()
    try:
        method = apply_patch(sandbox, tree, session.patch, base / "agent.diff")
    except PatchApplyError as exc:
        _check(checks, "apply", t0, False, str(exc))
        return checks, None, FailureCause.patch_does_not_apply
    _check(checks, "apply", t0, True, method)
    if planted := _planted_links(task, session, tree):
        _check(checks, "benchmark_script", t0, False, planted)
        return checks, method, FailureCause.tampering

    py_files = [f for f in session.files_changed if f.endswith(".py") and (tree / f).exists()]
    if py_files:
        t0 = time.monotonic()
        # compile() without writing .pyc files into the tree
        code = "import sys\nfor f in sys.argv[1:]: compile(open(f, 'rb').read(), f, 'exec')"
        res = sandbox.exec(["python", "-c", code, *py_files], cwd=tree, timeout_s=120, log_path=base / "compile.log")
        if not _check(checks, "compile", t0, res.ok, res.tail(8)):
            return checks, method, FailureCause.compile_error

    t0 = time.monotonic()
    # the package as an argument, never as code (the loader checks import_name too)
    res = sandbox.exec(["python", "-c", "import importlib, sys; importlib.import_module(sys.argv[1])", task.repo.package],
                       cwd=tree, timeout_s=settings.limits.import_timeout_s, log_path=base / "import.log")
    if _left_behind(checks, "import", t0, res):
        return checks, method, FailureCause.tampering
    if not _check(checks, "import", t0, res.ok, res.tail(8)):
        return checks, method, FailureCause.import_error

    if task.benchmark.kind == "serving" and settings.limits.validate_server:
        t0 = time.monotonic()
        cause, detail = _server_starts(sandbox, task, tree, settings, base / "server.log", logs)
        if cause is not None and session.patch.strip():
            # Before the agent is blamed: does the server start at the parent commit, without the patch?
            parent = detached_tree(mirror_path, task.parent_commit, base / "parent")
            if _server_starts(sandbox, task, parent, settings, base / "parent-server.log", logs)[0] is not None:
                raise StageError(FailureCause.baseline_failed, f"the server does not start at the parent commit either, "
                                 f"so the task (its server command, model or environment) is broken:\n{detail}")
        if not _check(checks, "server_start", t0, cause is None, detail):
            if not session.patch.strip():  # nothing of the agent's is in this tree: the task's fault
                raise StageError(FailureCause.baseline_failed, f"the server does not start at the parent commit:\n{detail}")
            return checks, method, cause
    return checks, method, None


def _left_behind(checks: list[Check], name: str, started: float, res: ExecResult) -> bool:
    """A check whose command left processes running (the patch's import-time code started a daemon) fails as
    tampering: nothing of an arm may outlive its step (stages/guard.py)."""
    if not res.leftovers:
        return False
    _check(checks, name, started, False, "the patch's code left processes running after the check: "
           + "; ".join(res.leftovers[:5]))
    return True


def _planted_links(task: Task, session: Session, tree: Path) -> str:
    """The symbolic links the patch made of the benchmark script or a folder on its path ("" when none): the
    harness copies the baseline's script there, and an agent's link would have it write where the link points."""
    script = engine_named(task.repo.engine_name).script_file(task.benchmark.command)
    planted = [p for p in links_on_path(tree, script) if p in session.files_changed] if script else []
    if not planted:
        return ""
    return ("the patch makes the benchmark script's path a symbolic link: "
            + ", ".join(f"{p} -> {os.readlink(tree / p)}" for p in planted))


def _server_starts(sandbox: Sandbox, task: Task, tree: Path, settings: Settings, log_path: Path,
                   logs: dict[str, str]) -> tuple[FailureCause | None, str]:
    server = launch(sandbox, engine_named(task.repo.engine_name), task, tree, settings.sandbox.host, log_path,
                    settings.limits.server_start_timeout_s)
    logs[f"validate_{log_path.name}"] = log_tail(server.stop())
    return server.failure or (None, server.command)
