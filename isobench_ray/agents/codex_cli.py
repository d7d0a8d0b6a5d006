"""Codex CLI (`npm install @openai/codex`): `codex exec` in the tree, as the original harness ran it, with
its own sandbox and approvals off because the session's sandbox is the boundary; `--json` events give
turns and tokens."""

from __future__ import annotations

import json
import shlex

from isobench_ray.agents.base import SessionContext
from isobench_ray.agents.cli import CliAgent, prompt_arg


class CodexCli(CliAgent):
    executable = "codex"

    def command(self, ctx: SessionContext, exe: str) -> str:
        model = f" -m {shlex.quote(self.spec.model)}" if self.spec.model else ""
        return (f"{exe} exec --cd {shlex.quote(str(ctx.workdir))} --skip-git-repo-check "
                f"--dangerously-bypass-approvals-and-sandbox --json{model} {prompt_arg(ctx)}")

    def endpoint_env(self) -> dict[str, str]:
        return {"OPENAI_BASE_URL": self.spec.api_base} if self.spec.api_base else {}

    def usage(self, ctx: SessionContext, output: str) -> tuple[int, int, float | None]:
        turns, tokens = 0, 0
        for line in output.splitlines():
            if line.startswith("{") and '"turn.completed"' in line:
                event = json.loads(line)
                turns += 1
                tokens += sum(int(v or 0) for k, v in (event.get("usage") or {}).items() if k.endswith("tokens")
                              and k != "cached_input_tokens")
        return turns, tokens, None  # codex reports no price
