"""The Agent protocol: what changes the tree during a session. The harness, not the agent, extracts the
patch afterwards (`git diff` against the starting tree), whatever the agent did with git."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from isobench_ray.sandbox.base import Sandbox
from isobench_ray.schema import FailureCause, Task, content_hash


class AgentConfigError(ValueError):
    pass


@dataclass
class SessionContext:
    task: Task
    workdir: Path
    prompt_file: Path
    sandbox: Sandbox
    time_limit_s: float
    mirror: Path
    log_dir: Path


@dataclass
class AgentOutcome:
    exit_status: str
    failure_cause: FailureCause | None = None
    detail: str = ""
    steps: int = 0  # what the agent reports of its work, where it does
    tokens: int = 0
    cost_usd: float | None = None


class Agent(Protocol):
    spec: Any  # the kind's spec model in isobench_ray.schema
    executes_code: bool  # runs a program (a model's agent): contained or not run at all

    def covers(self, task: Task) -> bool: ...
    def fingerprint(self, task: Task) -> Any:
        """Everything that changes the agent's behaviour on this task: part of the attempt's identity."""
        ...
    def run(self, ctx: SessionContext) -> AgentOutcome: ...


def hashed_env(env: dict[str, str]) -> dict[str, str]:
    """An agent's variables as its fingerprint holds them: values change behaviour (a model name, an
    endpoint) but may be secrets, so they are hashed, never written."""
    return {k: content_hash(v, 16) for k, v in sorted(env.items())}


class BuiltinAgent:
    """What the agents defined in this package share: they cover every task. Those that run a model's or a
    user's commands (litellm, command) set `executes_code`, and are contained or refused like any CLI agent."""

    executes_code = False

    def __init__(self, spec: Any):
        self.spec = spec

    def covers(self, task: Task) -> bool:
        return True


def apply_in_session(ctx: SessionContext, patch: str, name: str) -> AgentOutcome:
    """Apply a recorded patch inside the session's sandbox (human and replay agents)."""
    patch_file = ctx.log_dir / name
    ctx.sandbox.write_file(patch_file, patch)
    result = ctx.sandbox.exec(f"git apply --whitespace=nowarn {shlex.quote(str(patch_file))}", cwd=ctx.workdir,
                              timeout_s=120, log_path=ctx.log_dir / "agent.log")
    if result.ok:
        return AgentOutcome("applied")
    return AgentOutcome("apply failed", FailureCause.patch_does_not_apply, result.tail())
