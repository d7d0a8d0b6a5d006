"""TRAE Agent (`trae-cli`, github.com/bytedance/trae-agent; no registry ships it): `trae-cli run` on the
prompt file in the tree, as the original harness ran it; its trajectory file gives steps and tokens."""

from __future__ import annotations

import json
import shlex

from isobench_ray.agents.base import SessionContext
from isobench_ray.agents.cli import CliAgent


class Trae(CliAgent):
    executable = "trae-cli"

    def command(self, ctx: SessionContext, exe: str) -> str:
        spec = self.spec
        args = [f"{exe} run", f"--file {shlex.quote(str(ctx.prompt_file))}", f"--working-dir {shlex.quote(str(ctx.workdir))}",
                f"--max-steps {spec.max_steps}", f"--trajectory-file {shlex.quote(str(ctx.log_dir / 'trae.traj.json'))}"]
        if spec.model:
            args.append(f"--model {shlex.quote(spec.model)}")
        if spec.api_base:
            args.append(f"--model-base-url {shlex.quote(spec.api_base)}")
        return " ".join(args)

    def usage(self, ctx: SessionContext, output: str) -> tuple[int, int, float | None]:
        traj = json.loads((ctx.log_dir / "trae.traj.json").read_text())
        tokens = sum(int(u.get("input_tokens", 0) or 0) + int(u.get("output_tokens", 0) or 0)
                     for i in traj.get("llm_interactions", []) for u in [(i.get("response") or {}).get("usage") or {}])
        return len(traj.get("agent_steps", [])), tokens, None
