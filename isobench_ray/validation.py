"""Stage 2, validation: cheap checks before any benchmark slot is spent on a patch.

The patch applies to a fresh tree at the parent commit, the changed Python files compile, the package
imports, and (for serving tasks) the server starts and answers its health check.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

from isobench_ray.models import Attempt, Check, FailureCause, Session, Task, Validation
from isobench_ray.sandbox import LocalSandbox
from isobench_ray.servers import start_server, wait_healthy
from isobench_ray.settings import Settings
from isobench_ray.workspace import PatchApplyError, apply_patch, detached_tree, mirror, scratch


def validate(attempt: Attempt, task: Task, session: Session, settings: Settings) -> tuple[Validation, dict[str, str]]:
    logs: dict[str, str] = {}
    with scratch(settings.work_path, attempt.id, "validate") as base:
        checks, method, cause = _run_checks(attempt, task, session, settings, base, logs)
    return Validation(attempt_id=attempt.id, checks=checks, failure_cause=cause, apply_method=method), logs


def _run_checks(attempt: Attempt, task: Task, session: Session, settings: Settings, base: Path,
                logs: dict[str, str]) -> tuple[list[Check], str | None, FailureCause | None]:
    checks: list[Check] = []
    tree = detached_tree(mirror(task.repo.url, settings.cache_path, (task.parent_commit, task.human_commit)), task.parent_commit, base / "tree")
    t0 = time.monotonic()
    try:
        method = apply_patch(tree, session.patch)
    except PatchApplyError as exc:
        checks.append(Check(name="apply", ok=False, detail=str(exc), duration_s=time.monotonic() - t0))
        return checks, None, FailureCause.patch_does_not_apply
    checks.append(Check(name="apply", ok=True, detail=method, duration_s=time.monotonic() - t0))

    sandbox = LocalSandbox(f"{attempt.id}.validate")
    py_files = [f for f in session.files_changed if f.endswith(".py") and (tree / f).exists()]
    if py_files:
        t0 = time.monotonic()
        # compile() without writing .pyc files into the tree
        code = "import sys\nfor f in sys.argv[1:]: compile(open(f, 'rb').read(), f, 'exec')"
        res = sandbox.exec(f"python -c {shlex.quote(code)} {shlex.join(py_files)}", cwd=tree, timeout_s=120,
                           log_path=base / "compile.log")
        checks.append(Check(name="compile", ok=res.ok, detail=res.tail(8), duration_s=time.monotonic() - t0))
        if not res.ok:
            return checks, method, FailureCause.compile_error

    t0 = time.monotonic()
    res = sandbox.exec(f"python -c 'import {task.repo.package}'", cwd=tree, timeout_s=settings.import_timeout_s,
                       log_path=base / "import.log")
    checks.append(Check(name="import", ok=res.ok, detail=res.tail(8), duration_s=time.monotonic() - t0))
    if not res.ok:
        return checks, method, FailureCause.import_error

    if task.benchmark.kind == "serving" and settings.validate_server:
        t0 = time.monotonic()
        proc, command, port = start_server(sandbox, task, tree, settings.host, base / "server.log")
        try:
            cause, detail = wait_healthy(proc, f"http://{settings.host}:{port}{task.repo.health_path}", settings.server_start_timeout_s)
        finally:
            proc.stop()
            logs["validate_server.log"] = proc.output()[-200_000:]
        checks.append(Check(name="server_start", ok=cause is None, detail=detail or command, duration_s=time.monotonic() - t0))
        if cause:
            return checks, method, cause
    return checks, method, None
