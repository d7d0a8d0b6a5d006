"""`noop`: changes nothing. The A/A control: its speedup is what "no change" measures as."""

from __future__ import annotations

from typing import Any

from isobench_ray.agents.base import AgentOutcome, BuiltinAgent, SessionContext
from isobench_ray.schema import NoopSpec, Task


class NoopAgent(BuiltinAgent):
    spec: NoopSpec

    def fingerprint(self, task: Task) -> Any:
        return {"kind": "noop"}

    def run(self, ctx: SessionContext) -> AgentOutcome:
        return AgentOutcome("done")
