"""Claude Code (`npm install @anthropic-ai/claude-code`, tested with 2.1.197): print mode with JSON output,
the prompt on stdin, web tools off, as the original harness ran it; permissions are skipped because the
session's sandbox is the boundary (IS_SANDBOX=1 lets it do so as root). The result JSON gives turns,
tokens and cost."""

from __future__ import annotations

import json
import shlex

from isobench_ray.agents.base import SessionContext
from isobench_ray.agents.cli import CliAgent


def last_json(output: str, **match) -> dict:
    """The last line of the output that is a JSON object with these key/values."""
    for line in reversed(output.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if all(data.get(k) == v for k, v in match.items()):
                return data
    raise ValueError("no such JSON line")


class ClaudeCode(CliAgent):
    executable = "claude"

    def command(self, ctx: SessionContext, exe: str) -> str:
        spec = self.spec
        model = f" --model {shlex.quote(spec.model)}" if spec.model else ""
        return (f"{exe} -p --output-format json{model} --disallowedTools WebFetch,WebSearch "
                f"--dangerously-skip-permissions --max-turns {spec.max_steps} < {shlex.quote(str(ctx.prompt_file))}")

    def endpoint_env(self) -> dict[str, str]:
        env = {"IS_SANDBOX": "1", "DISABLE_AUTOUPDATER": "1", "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1",
               "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
        if self.spec.api_base:
            env["ANTHROPIC_BASE_URL"] = self.spec.api_base
        return env

    def usage(self, ctx: SessionContext, output: str) -> tuple[int, int, float | None]:
        result = last_json(output, type="result")
        usage = result.get("usage") or {}
        tokens = sum(int(usage.get(k) or 0) for k in ("input_tokens", "output_tokens", "cache_creation_input_tokens",
                                                      "cache_read_input_tokens"))
        cost = result.get("total_cost_usd")
        return int(result.get("num_turns") or 0), tokens, float(cost) if cost is not None else None
