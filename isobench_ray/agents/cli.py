"""What the adapters of third-party agent CLIs share: build the command line, run it in the session's
sandbox with the prompt, read what the agent reports of its work.

An adapter (one module per agent) says three things: its command line, the variables that point the
agent at the user's model endpoint, and how to read steps, tokens and cost from what it left (its JSON
output, its trajectory file). The harness extracts the patch itself afterwards, whatever the agent did
with git. Agents that ask for permission before running a tool are told not to: the sandbox is the
permission (bubblewrap or a container, never the bare host).
"""

from __future__ import annotations

import shlex
from typing import Any

from isobench_ray.agents.base import AgentOutcome, BuiltinAgent, SessionContext, hashed_env
from isobench_ray.schema import CliAgentSpec, FailureCause, Task


class CliAgent(BuiltinAgent):
    executes_code = True
    spec: CliAgentSpec
    executable = ""  # the CLI's usual name

    # ------------------------------------------------------------ what each adapter says

    def command(self, ctx: SessionContext, exe: str) -> str:
        """The shell line that runs the agent on the prompt in ctx.prompt_file, in ctx.workdir."""
        raise NotImplementedError

    def endpoint_env(self) -> dict[str, str]:
        """Variables that point the agent at spec.api_base / spec.model."""
        return {}

    def usage(self, ctx: SessionContext, output: str) -> tuple[int, int, float | None]:
        """(steps, tokens, cost in dollars or None) from what the agent left."""
        return 0, 0, None

    # ------------------------------------------------------------ shared

    def fingerprint(self, task: Task) -> Any:
        # `image` only where set: attempts measured before it existed keep their ids
        data = self.spec.model_dump(exclude={"env", "name", "knowledge_cutoff"} | (set() if self.spec.image else {"image"}))
        return {**data, "env": hashed_env(self.spec.env),
                "adapter": type(self).__name__}

    def run(self, ctx: SessionContext) -> AgentOutcome:
        exe = shlex.quote(self.spec.executable or self.executable)
        extra = " ".join(shlex.quote(a) for a in self.spec.extra_args)
        line = f"{self.command(ctx, exe)} {extra}".strip()
        (ctx.log_dir / "command.sh").write_text(line + "\n")
        result = ctx.sandbox.exec(line, cwd=ctx.workdir, timeout_s=ctx.time_limit_s, env=self.endpoint_env(),
                                  log_path=ctx.log_dir / "agent.log")
        try:
            steps, tokens, cost = self.usage(ctx, result.output)
        except (OSError, ValueError, KeyError, TypeError):  # an agent version that reports otherwise: no usage
            steps, tokens, cost = 0, 0, None
        usage = dict(steps=steps, tokens=tokens, cost_usd=cost)
        if result.timed_out:
            return AgentOutcome("timeout", FailureCause.agent_timeout, f"killed after {ctx.time_limit_s:.0f}s: {result.tail(5)}",
                                **usage)
        if result.returncode != 0:  # edits made before a non-zero exit are still judged on their merits
            return AgentOutcome(f"exit {result.returncode}", None, result.tail(5), **usage)
        return AgentOutcome("done", **usage)


def prompt_arg(ctx: SessionContext) -> str:
    """The prompt as one shell word, read from its file when the command runs."""
    return f'"$(cat {shlex.quote(str(ctx.prompt_file))})"'
