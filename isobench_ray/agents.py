"""Agents: what changes the tree during a session. The harness, not the agent, extracts the patch afterwards.

- `human`: applies the human commit's diff. The oracle: proves the harness can see a real speedup.
- `noop`: changes nothing. The A/A control.
- `replay`: applies recorded patches: SWE-bench predictions JSONL (`instance_id`, `model_patch`,
  `model_name_or_path`), a single .diff, or a folder of `<task>.diff` / `<task>/model_patch.diff` (ISO-Bench).
- `command`: any CLI agent, from a command template with {workdir} {prompt_file} {time_limit_s} {task_id}.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from isobench_ray.models import AgentSpec, FailureCause, Task, content_hash
from isobench_ray.sandbox import Sandbox
from isobench_ray.workspace import diff_between


class AgentConfigError(ValueError):
    pass


@dataclass
class SessionContext:
    task: Task
    workdir: Path
    prompt_file: Path
    sandbox: Sandbox
    time_limit_s: float
    mirror: Path
    log_dir: Path


@dataclass
class AgentOutcome:
    exit_status: str
    failure_cause: FailureCause | None = None
    detail: str = ""


class Agent(Protocol):
    spec: AgentSpec

    def covers(self, task: Task) -> bool: ...
    def fingerprint(self, task: Task) -> Any: ...
    def run(self, ctx: SessionContext) -> AgentOutcome: ...


def _git_apply(ctx: SessionContext, patch: str, name: str) -> AgentOutcome:
    patch_file = ctx.log_dir / name
    patch_file.write_text(patch)
    result = ctx.sandbox.exec(f"git apply --whitespace=nowarn {shlex.quote(str(patch_file))}", cwd=ctx.workdir,
                              timeout_s=120, log_path=ctx.log_dir / "agent.log")
    if result.ok:
        return AgentOutcome("applied")
    return AgentOutcome("apply failed", FailureCause.patch_does_not_apply, result.tail())


class HumanAgent:
    def __init__(self, spec: AgentSpec):
        self.spec = spec

    def covers(self, task: Task) -> bool:
        return True

    def fingerprint(self, task: Task) -> Any:
        return {"kind": "human"}

    def run(self, ctx: SessionContext) -> AgentOutcome:
        patch = diff_between(ctx.mirror, ctx.task.parent_commit, ctx.task.human_commit)
        return _git_apply(ctx, patch, "human.diff")


class NoopAgent:
    def __init__(self, spec: AgentSpec):
        self.spec = spec

    def covers(self, task: Task) -> bool:
        return True

    def fingerprint(self, task: Task) -> Any:
        return {"kind": "noop"}

    def run(self, ctx: SessionContext) -> AgentOutcome:
        return AgentOutcome("done")


def load_patches(source: Path, model_name: str | None = None) -> dict[str, str]:
    """Recorded patches keyed by instance id ("*" for a single diff that serves every task)."""
    if source.is_dir():
        patches = {p.stem: p.read_text() for p in source.glob("*.diff")}
        patches |= {p.parent.name: p.read_text() for p in source.glob("*/model_patch.diff")}
        return patches
    if source.suffix in (".jsonl", ".json"):
        patches: dict[str, str] = {}
        lines = source.read_text().splitlines() if source.suffix == ".jsonl" else [json.dumps(r) for r in json.loads(source.read_text())]
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                iid, patch, name = rec["instance_id"], rec["model_patch"], rec.get("model_name_or_path")
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise AgentConfigError(f"{source}:{n}: not a prediction record with instance_id and model_patch ({exc})") from exc
            if model_name is None or name == model_name:
                patches[str(iid)] = patch or ""
        return patches
    if source.exists():
        return {"*": source.read_text()}
    raise AgentConfigError(f"{source}: no such patch file or folder")


def model_names(source: Path) -> list[str]:
    """The distinct model_name_or_path values of a predictions JSONL, in file order."""
    names: list[str] = []
    for line in source.read_text().splitlines():
        if line.strip():
            name = json.loads(line).get("model_name_or_path")
            if name and name not in names:
                names.append(name)
    return names


class ReplayAgent:
    def __init__(self, spec: AgentSpec):
        if not spec.patches:
            raise AgentConfigError(f"agent {spec.name}: replay needs `patches`")
        self.spec = spec
        self.patches = load_patches(Path(spec.patches), spec.model_name)

    def patch_for(self, task: Task) -> str | None:
        for key in (task.id, task.human_commit[:8], task.human_commit, "*"):
            if key in self.patches:
                return self.patches[key]
        return None

    def covers(self, task: Task) -> bool:
        # Like SWE-bench's harness: a predictions file is evaluated on the instances it predicts.
        return self.patch_for(task) is not None

    def fingerprint(self, task: Task) -> Any:
        return {"kind": "replay", "patch": content_hash(self.patch_for(task) or "", 16)}

    def run(self, ctx: SessionContext) -> AgentOutcome:
        patch = self.patch_for(ctx.task) or ""
        if not patch.strip():
            return AgentOutcome("empty patch")
        return _git_apply(ctx, patch, "replay.diff")


class CommandAgent:
    def __init__(self, spec: AgentSpec):
        if not spec.command:
            raise AgentConfigError(f"agent {spec.name}: command agents need `command`")
        self.spec = spec

    def covers(self, task: Task) -> bool:
        return True

    def fingerprint(self, task: Task) -> Any:
        return {"kind": "command", "command": self.spec.command, "time_limit_s": self.spec.time_limit_s,
                "env": sorted(self.spec.env)}

    def run(self, ctx: SessionContext) -> AgentOutcome:
        command = self.spec.command.format(workdir=shlex.quote(str(ctx.workdir)), prompt_file=shlex.quote(str(ctx.prompt_file)),
                                           time_limit_s=int(ctx.time_limit_s), task_id=ctx.task.id)
        result = ctx.sandbox.exec(command, cwd=ctx.workdir, timeout_s=ctx.time_limit_s, env=self.spec.env,
                                  log_path=ctx.log_dir / "agent.log")
        if result.timed_out:
            return AgentOutcome("timeout", FailureCause.agent_timeout, f"killed after {ctx.time_limit_s:.0f}s: {result.tail(5)}")
        if result.returncode != 0:
            # A non-zero exit with edits still counts: the patch is judged on its merits.
            return AgentOutcome(f"exit {result.returncode}", None, result.tail(5))
        return AgentOutcome("done")


_KINDS = {"human": HumanAgent, "noop": NoopAgent, "replay": ReplayAgent, "command": CommandAgent}


def make_agent(spec: AgentSpec) -> Agent:
    return _KINDS[spec.kind](spec)


def parse_agents(text: str, agents_file: Path | None = None) -> list[AgentSpec]:
    """`human,noop,replay:PATH[#model]` plus names defined in an agents YAML (`agents: [{name, kind, ...}]`)."""
    defined: dict[str, AgentSpec] = {}
    if agents_file:
        doc = yaml.safe_load(agents_file.read_text()) or {}
        for i, raw in enumerate(doc.get("agents") or []):
            try:
                spec = AgentSpec(**raw)
            except Exception as exc:
                raise AgentConfigError(f"{agents_file}: agents[{i}]: {exc}") from exc
            defined[spec.name] = spec
    specs: list[AgentSpec] = []
    for item in [t.strip() for t in text.split(",") if t.strip()]:
        if item in defined:
            specs.append(defined[item])
        elif item in ("human", "noop"):
            specs.append(AgentSpec(name=item, kind=item))
        elif item.startswith("replay:"):
            path, _, model = item.removeprefix("replay:").partition("#")
            source = Path(path)
            if not source.exists():
                raise AgentConfigError(f"{item}: no such patch file or folder {path}")
            if source.suffix == ".jsonl" and not model:
                names = model_names(source) or [source.stem]
                specs += [AgentSpec(name=n, kind="replay", patches=str(source.resolve()), model_name=n) for n in names]
            else:
                specs.append(AgentSpec(name=model or f"replay-{source.stem}", kind="replay", patches=str(source.resolve()), model_name=model or None))
        else:
            raise AgentConfigError(f"unknown agent {item!r}: use human, noop, replay:PATH, or a name from --agents-file")
    names = [s.name for s in specs]
    if len(names) != len(set(names)):
        raise AgentConfigError(f"agent names must be unique: {names}")
    return specs
