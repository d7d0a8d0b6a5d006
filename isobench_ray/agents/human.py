"""`human`: applies the human commit's diff. The oracle: proves the harness can see a real speedup."""

from __future__ import annotations

from typing import Any

from isobench_ray.agents.base import AgentOutcome, SessionContext, apply_in_session
from isobench_ray.schema import HumanSpec, Task
from isobench_ray.workspace import diff_between


class HumanAgent:
    executes_code = False

    def __init__(self, spec: HumanSpec):
        self.spec = spec

    def covers(self, task: Task) -> bool:
        return True

    def fingerprint(self, task: Task) -> Any:
        return {"kind": "human"}

    def run(self, ctx: SessionContext) -> AgentOutcome:
        patch = diff_between(ctx.mirror, ctx.task.parent_commit, ctx.task.human_commit)
        return apply_in_session(ctx, patch, "human.diff")
