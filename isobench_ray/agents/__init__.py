"""Agents by kind: one module each, one spec model each (isobench_ray.schema), one registry here."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

import yaml
from pydantic import ValidationError

from isobench_ray.agents.base import Agent, AgentConfigError, AgentOutcome, SessionContext
from isobench_ray.agents.claude_code import ClaudeCode
from isobench_ray.agents.codex_cli import CodexCli
from isobench_ray.agents.command import CommandAgent
from isobench_ray.agents.human import HumanAgent
from isobench_ray.agents.litellm import LitellmAgent
from isobench_ray.agents.mini_swe_agent import MiniSweAgent
from isobench_ray.agents.noop import NoopAgent
from isobench_ray.agents.openhands import OpenHands
from isobench_ray.agents.replay import ReplayAgent, load_patches, model_names
from isobench_ray.agents.trae import Trae
from isobench_ray.schema import AGENT_SPEC, AgentSpec, CommandSpec, HumanSpec, NoopSpec, ReplaySpec, slug

KINDS: dict[str, type] = {"human": HumanAgent, "noop": NoopAgent, "replay": ReplayAgent, "command": CommandAgent,
                          "litellm": LitellmAgent, "claude_code": ClaudeCode, "codex_cli": CodexCli, "trae": Trae,
                          "openhands": OpenHands, "mini_swe_agent": MiniSweAgent}


def _shown(name: str, source: Path) -> str:
    """A model name from someone's file, as a safe agent name (it becomes part of paths); a change is said."""
    safe = slug(name)
    if safe != name:
        print(f"isobench: agent name {name!r} from {source} is used as {safe!r}", file=sys.stderr)
    return safe


def make_agent(spec: AgentSpec) -> Agent:
    return KINDS[spec.kind](spec)


def parse_agents(text: str, agents_file: Path | None = None) -> list[AgentSpec]:
    """`human,noop,replay:PATH[#model]` plus names defined in an agents YAML (`agents: [{name, kind, ...}]`)."""
    defined: dict[str, AgentSpec] = {}
    if agents_file:
        doc = yaml.safe_load(agents_file.read_text()) or {}
        for i, raw in enumerate(doc.get("agents") or []):
            try:
                spec = AGENT_SPEC.validate_python(raw)
            except ValidationError as exc:
                where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                raise AgentConfigError(f"{agents_file}: agents[{i}]: {where}") from exc
            if isinstance(spec, CommandSpec):
                try:
                    spec.command.format(workdir="w", prompt_file="p", time_limit_s=1, task_id="t")
                except (KeyError, IndexError, ValueError) as exc:
                    raise AgentConfigError(f"{agents_file}: agents[{i}].command: not a template with {{workdir}} {{prompt_file}} "
                                           f"{{time_limit_s}} {{task_id}} ({type(exc).__name__}: {exc}); write a literal "
                                           f"brace as {{{{ or }}}}") from None
            defined[spec.name] = spec
    specs: list[AgentSpec] = []
    for item in [t.strip() for t in text.split(",") if t.strip()]:
        if item in defined:
            specs.append(defined[item])
        elif item in ("human", "noop"):
            specs.append(HumanSpec(name=item) if item == "human" else NoopSpec(name=item))
        elif item.startswith("replay:"):
            path, _, model = item.removeprefix("replay:").partition("#")
            source = Path(path)
            if not source.exists():
                raise AgentConfigError(f"{item}: no such patch file or folder {path}")
            if source.suffix == ".jsonl" and not model:
                names = model_names(source)
                load_patches(source)  # every line checked now, with its number, not at session time
                specs += [ReplaySpec(name=_shown(n, source), patches=str(source.resolve()), model_name=n) for n in names] or [
                    ReplaySpec(name=_shown(source.stem, source), patches=str(source.resolve()))]
            else:
                load_patches(source, model or None)
                specs.append(ReplaySpec(name=_shown(model or f"replay-{source.stem}", source), patches=str(source.resolve()),
                                        model_name=model or None))
        else:
            close = difflib.get_close_matches(item, ["human", "noop", *defined], n=3, cutoff=0.5)
            raise AgentConfigError(f"unknown agent {item!r}" + (f" (did you mean {', '.join(close)}?)" if close else "")
                                   + ": use human, noop, replay:PATH, or a name from --agents-file")
    names = [s.name for s in specs]
    if not names:
        raise AgentConfigError(f"--agents {text!r}: no agent named; use human, noop, replay:PATH, or names from "
                               f"--agents-file" + (f" ({', '.join(defined)})" if defined else ""))
    if len(names) != len(set(names)):
        raise AgentConfigError(f"agent names must be unique: {names}")
    return specs


__all__ = ["Agent", "AgentConfigError", "AgentOutcome", "SessionContext", "make_agent", "parse_agents", "KINDS"]
