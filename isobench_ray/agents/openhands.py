"""OpenHands (`pip install openhands-ai==0.59.0`, the last line with `openhands.core.main`; Python 3.12):
its headless main on the prompt file in the tree, as the original harness ran it (`-d WT -f task.txt -i
N`), with the local runtime because the session's sandbox is the boundary (no user of its own, no
browser: neither can be had offline); `executable` is the Python that has OpenHands. The saved
trajectory gives steps, tokens and cost."""

from __future__ import annotations

import json
import os
import shlex

from isobench_ray.agents.base import SessionContext
from isobench_ray.agents.cli import CliAgent


class OpenHands(CliAgent):
    executable = "python"

    def command(self, ctx: SessionContext, exe: str) -> str:
        trajectory = shlex.quote(str(ctx.log_dir / "openhands.traj.json"))
        volumes = shlex.quote(f"{ctx.workdir}:/workspace:rw")  # the local runtime works in the tree itself
        return (f"SAVE_TRAJECTORY_PATH={trajectory} SANDBOX_VOLUMES={volumes} {exe} -m openhands.core.main "
                f"-d {shlex.quote(str(ctx.workdir))} -f {shlex.quote(str(ctx.prompt_file))} -i {self.spec.max_steps}")

    def endpoint_env(self) -> dict[str, str]:
        env = {"RUNTIME": "local", "RUN_AS_OPENHANDS": "false", "SANDBOX_USER_ID": str(os.getuid()),
               "ENABLE_BROWSER": "false", "AGENT_ENABLE_BROWSING": "false", "LOG_ALL_EVENTS": "true",
               "MAX_BUDGET_PER_TASK": str(self.spec.cost_limit)}
        if self.spec.model:
            env["LLM_MODEL"] = self.spec.model
        if self.spec.api_base:
            env["LLM_BASE_URL"] = self.spec.api_base
        return env

    def usage(self, ctx: SessionContext, output: str) -> tuple[int, int, float | None]:
        events = json.loads((ctx.log_dir / "openhands.traj.json").read_text())
        steps = sum(1 for e in events if e.get("source") == "agent" and e.get("action") not in (None, "system", "message"))
        metrics = next((e["llm_metrics"] for e in reversed(events) if e.get("llm_metrics")), {})
        usage = metrics.get("accumulated_token_usage") or {}
        return steps, int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0)), metrics.get("accumulated_cost")
