"""`command`: any CLI agent, from a command template with {workdir} {prompt_file} {time_limit_s} {task_id}."""

from __future__ import annotations

import shlex
from typing import Any

from isobench_ray.agents.base import AgentOutcome, BuiltinAgent, SessionContext, hashed_env
from isobench_ray.schema import CommandSpec, FailureCause, Task


class CommandAgent(BuiltinAgent):
    """The one kind that runs a model's code: contained, or refused (see runner.check_containment)."""

    executes_code = True
    spec: CommandSpec

    def fingerprint(self, task: Task) -> Any:
        return {"kind": "command", "command": self.spec.command, "time_limit_s": self.spec.time_limit_s,
                "network": self.spec.network, "env": hashed_env(self.spec.env),
                **({"image": self.spec.image} if self.spec.image else {})}

    def run(self, ctx: SessionContext) -> AgentOutcome:
        command = self.spec.command.format(workdir=shlex.quote(str(ctx.workdir)), prompt_file=shlex.quote(str(ctx.prompt_file)),
                                           time_limit_s=int(ctx.time_limit_s), task_id=ctx.task.id)
        result = ctx.sandbox.exec(command, cwd=ctx.workdir, timeout_s=ctx.time_limit_s,
                                  log_path=ctx.log_dir / "agent.log")
        if result.timed_out:
            return AgentOutcome("timeout", FailureCause.agent_timeout, f"killed after {ctx.time_limit_s:.0f}s: {result.tail(5)}")
        if result.returncode != 0:
            # A non-zero exit with edits still counts: the patch is judged on its merits.
            return AgentOutcome(f"exit {result.returncode}", None, result.tail(5))
        return AgentOutcome("done")
