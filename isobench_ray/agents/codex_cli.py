"""Codex CLI (`npm install @openai/codex`, tested with 0.171.0): `codex exec` in the tree, as the original
harness ran it, with its own sandbox and approvals off because the session's sandbox is the boundary;
`--json` events give turns and tokens. An `api_base` becomes a model provider of its own (Codex reads no
OPENAI_BASE_URL), speaking the Responses API with the key in OPENAI_API_KEY."""

from __future__ import annotations

import json
import shlex

from isobench_ray.agents.base import SessionContext
from isobench_ray.agents.cli import CliAgent, prompt_arg


class CodexCli(CliAgent):
    executable = "codex"

    def command(self, ctx: SessionContext, exe: str) -> str:
        model = f" -m {shlex.quote(self.spec.model)}" if self.spec.model else ""
        provider = ""
        if self.spec.api_base:
            table = (f'{{name="isobench",base_url={json.dumps(self.spec.api_base)},env_key="OPENAI_API_KEY",'
                     f'wire_api="responses"}}')
            provider = f" -c model_provider=isobench -c {shlex.quote('model_providers.isobench=' + table)}"
        return (f"{exe} exec --cd {shlex.quote(str(ctx.workdir))} --skip-git-repo-check "
                f"--dangerously-bypass-approvals-and-sandbox --json{model}{provider} {prompt_arg(ctx)} < /dev/null")

    def usage(self, ctx: SessionContext, output: str) -> tuple[int, int, float | None]:
        turns, tokens = 0, 0
        for line in output.splitlines():
            if line.startswith("{") and '"turn.completed"' in line:
                event = json.loads(line)
                turns += 1
                tokens += sum(int(v or 0) for k, v in (event.get("usage") or {}).items() if k.endswith("tokens")
                              and k != "cached_input_tokens")
        return turns, tokens, None  # codex reports no price
