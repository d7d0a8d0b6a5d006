"""mini-swe-agent (`pip install mini-swe-agent`, tested with 2.4.6): its text-based loop (one
```mswea_bash_command block per reply) through litellm, yolo mode, exits when the model submits; the
trajectory (`mini.traj.json`) gives steps and cost."""

from __future__ import annotations

import json
import shlex

from isobench_ray.agents.base import SessionContext
from isobench_ray.agents.cli import CliAgent, prompt_arg


class MiniSweAgent(CliAgent):
    executable = "mini"

    def command(self, ctx: SessionContext, exe: str) -> str:
        spec = self.spec
        config = ["mini_textbased.yaml", f"agent.step_limit={spec.max_steps}"]
        if spec.api_base:
            config.append(f"model.model_kwargs.api_base={spec.api_base}")
        args = [exe, "--yolo", "--exit-immediately", "--model-class", "litellm_textbased", "-l", str(spec.cost_limit),
                "-o", str(ctx.log_dir / "mini.traj.json")]
        args = [shlex.quote(a) if a != exe else a for a in args]
        args += [f"-c {shlex.quote(c)}" for c in config]
        if spec.model:
            args.append(f"-m {shlex.quote(spec.model)}")
        return " ".join(args) + f" -t {prompt_arg(ctx)}"

    def endpoint_env(self) -> dict[str, str]:
        # no first-run wizard, no banner; a local model without a price is not an error
        return {"MSWEA_CONFIGURED": "true", "MSWEA_SILENT_STARTUP": "1", "MSWEA_COST_TRACKING": "ignore_errors"}

    def usage(self, ctx: SessionContext, output: str) -> tuple[int, int, float | None]:
        traj = json.loads((ctx.log_dir / "mini.traj.json").read_text())
        stats = traj.get("info", {}).get("model_stats", {})
        messages = traj.get("messages", [])
        tokens = sum(int(((m.get("extra") or {}).get("response") or {}).get("usage", {}).get("total_tokens", 0) or 0)
                     for m in messages if m.get("role") == "assistant")
        return int(stats.get("api_calls", 0)), tokens, float(stats["instance_cost"]) if stats.get("instance_cost") else None
