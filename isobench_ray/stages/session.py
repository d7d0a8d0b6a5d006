"""Stage 1, the agent session: a detached tree at the parent commit, the agent in a sandbox, the patch by git diff."""

from __future__ import annotations

import os
import time
from pathlib import Path

from isobench_ray.agents import SessionContext, make_agent
from isobench_ray.config import Settings
from isobench_ray.sandbox.base import ImageMissing, SandboxFactory, SandboxUnavailable, images_of, with_agent
from isobench_ray.schema import AgentSpec, Attempt, CliAgentSpec, FailureCause, Session, StageError, Task, per_commit
from isobench_ray.workspace import SCRATCH_DIRS, detached_tree, extract_patch, mirror, scratch

PROMPT = """\
You are working in a checkout of the {repo} repository: {workdir}

{description}
The change will be measured with this benchmark, run from the repository root:

    {benchmark}

Make the workload faster while keeping the repository functionally equivalent: the model must generate
the same tokens. Edit non-test source files in place; your changes are collected with `git diff` when the
session ends. Put any scratch scripts under {workdir}/{scratch}/ (not part of the patch). You have
{minutes} minutes.

Repository layout (top two levels):
{layout}
"""


def repo_layout(workdir: Path, limit: int = 120) -> str:
    """The top two levels of the tree, hidden entries left out: where an agent starts to look."""
    lines = []
    for entry in sorted(p for p in Path(workdir).iterdir() if not p.name.startswith(".")):
        lines.append(f"  {entry.name}{'/' if entry.is_dir() else ''}")
        if entry.is_dir():
            lines += [f"    {child.name}{'/' if child.is_dir() else ''}" for child in sorted(entry.iterdir())
                      if not child.name.startswith((".", "__pycache__"))]
    return "\n".join(lines[:limit] + ([f"  ... ({len(lines) - limit} more)"] if len(lines) > limit else []))


def render_prompt(task: Task, workdir, time_limit_s: float) -> str:
    """The bottleneck, the benchmark and the layout; never the human diff, its message or its files."""
    return PROMPT.format(repo=task.repo.name, workdir=workdir, description=task.description.strip() + "\n",
                         benchmark=task.benchmark.command, scratch=SCRATCH_DIRS[0], minutes=int(time_limit_s // 60),
                         layout=repo_layout(Path(workdir)) if Path(workdir).is_dir() else "")


def run_session(attempt: Attempt, task: Task, spec: AgentSpec, settings: Settings, *,
                sandboxes: SandboxFactory) -> tuple[Session, dict[str, str]]:
    """Returns the Session and its logs {file name: text}; the caller stores both."""
    started = time.monotonic()
    agent = make_agent(spec)
    with scratch(settings.paths.work, attempt.id, "session") as base:
        workdir, log_dir, home = base / "tree", base / "logs", base / "home"
        log_dir.mkdir()
        home.mkdir()  # the agent's own HOME: its tools' config and caches, never the user's
        mirror_path = mirror(task.repo.url, settings.paths.cache, (task.parent_commit, task.human_commit))
        detached_tree(mirror_path, task.parent_commit, workdir)
        prompt = render_prompt(task, workdir, spec.time_limit_s)
        prompt_file = log_dir / "prompt.md"
        prompt_file.write_text(prompt)
        sandbox = _agent_sandbox(attempt, task, spec, agent, settings, sandboxes, (workdir, log_dir, home))
        ctx = SessionContext(task, workdir, prompt_file, sandbox, spec.time_limit_s, mirror_path, log_dir)
        agent_started = time.monotonic()
        try:
            outcome = agent.run(ctx)
        finally:
            sandbox.cleanup()
        agent_s = time.monotonic() - agent_started
        if not workdir.is_dir():  # removed from outside the session (a run sharing the work folder): never the agent's fault
            raise RuntimeError(f"the session's tree {workdir} is gone: removed outside the session")
        extracted = extract_patch(workdir, settings.limits.max_patch_bytes)
        cause, detail, logs = _outcome_and_logs(spec, outcome, extracted, settings.limits.max_patch_bytes, log_dir)
        logs["prompt.md"] = prompt
        return Session(attempt_id=attempt.id, patch=extracted.patch, files_changed=extracted.files,
                       exit_status=outcome.exit_status, duration_s=time.monotonic() - started, agent_s=agent_s,
                       steps=outcome.steps, tokens=outcome.tokens, cost_usd=outcome.cost_usd,
                       sandbox="none" if agent.executes_code and not sandbox.isolated else sandbox.kind,
                       failure_cause=cause, detail=detail), logs


def _agent_sandbox(attempt: Attempt, task: Task, spec: AgentSpec, agent, settings: Settings,
                   sandboxes: SandboxFactory, folders: tuple[Path, Path, Path]):
    """The session's sandbox: the tree, logs and HOME writable, the mirror and a local repository (the human
    commit: the answer) hidden. An agent that runs code is contained or not run at all (unless --sandbox
    none); a replay is contained where it can be."""
    workdir, log_dir, home = folders
    isolate = (settings.sandbox.kind != "none" and settings.sandbox.isolate_agents
               and (agent.executes_code or sandboxes.can_isolate))
    try:
        repo_path = [Path(task.repo.url)] if Path(task.repo.url).is_dir() else []
        missing = [name for name in spec.host_env if name not in os.environ]
        if missing:
            raise SandboxUnavailable(f"{', '.join(missing)} (named in host_env) not set on this node")
        given = {name: os.environ[name] for name in spec.host_env}
        image = per_commit(spec.image, task.parent_commit) if spec.image else None
        if image and (store := images_of(sandboxes)):
            store.ensure(image)
        # the agent's CLI (its configured executable, else the adapter's usual name) readable where it runs, and
        # the port of its model endpoint when that is on this host (a CLI agent calls it from the sandbox)
        program = getattr(spec, "executable", None) or getattr(agent, "executable", "")
        endpoint = spec.api_base if isinstance(spec, CliAgentSpec) else None
        return with_agent(sandboxes, [program] if program else [], [endpoint] if endpoint else [])(
            attempt.id, writable=[workdir, log_dir, home], network=spec.network, isolate=isolate,
            env={"HOME": str(home), **spec.env, **given}, hide=repo_path, image=image)
    except ImageMissing as exc:
        raise StageError(FailureCause.image_missing, f"agent {spec.name}: {exc}") from None
    except SandboxUnavailable as exc:
        raise StageError(FailureCause.sandbox_unavailable, f"agent {spec.name}: {exc}") from None


def _outcome_and_logs(spec: AgentSpec, outcome, extracted, max_patch_bytes: int, log_dir: Path):
    """(failure cause, detail, logs): a patch over the limit is kept compressed; an empty one is no_patch
    (but noop's, the A/A control); the agent's own log, trajectory and command as it wrote them."""
    cause, detail = outcome.failure_cause, outcome.detail
    logs: dict[str, str | bytes] = {}
    if extracted.compressed is not None:
        cause = FailureCause.patch_too_large
        detail = (f"the changes hold {extracted.size / 1e6:.1f} MB, over the limit of {max_patch_bytes / 1e6:.1f} MB "
                  f"(max_patch_bytes); the diff is kept in patch.diff.gz. Files: {', '.join(extracted.files[:10])}")
        logs["patch.diff.gz"] = extracted.compressed
    else:
        logs["patch.diff"] = extracted.patch
    if cause is None and not extracted.patch.strip() and spec.kind != "noop":
        cause = FailureCause.no_patch
    for path in sorted(log_dir.iterdir()):
        # not through a link the agent planted (a host file copied into the record)
        if path.is_file() and not path.is_symlink() and path.suffix in (".log", ".json", ".sh") and path.name != "step.log":
            logs[path.name] = path.read_text(errors="replace")[-20_000_000:]
    return cause, detail, logs
