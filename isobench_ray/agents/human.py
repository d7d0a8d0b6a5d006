"""`human`: applies the human commit's diff. The oracle: proves the harness can see a real speedup."""

from __future__ import annotations

from typing import Any

from isobench_ray.agents.base import AgentOutcome, BuiltinAgent, SessionContext, apply_in_session
from isobench_ray.schema import HumanSpec, Task
from isobench_ray.workspace import diff_between


class HumanAgent(BuiltinAgent):
    spec: HumanSpec

    def fingerprint(self, task: Task) -> Any:
        return {"kind": "human"}

    def run(self, ctx: SessionContext) -> AgentOutcome:
        patch = diff_between(ctx.mirror, ctx.task.parent_commit, ctx.task.human_commit)
        return apply_in_session(ctx, patch, "human.diff")
