"""`replay`: applies recorded patches: SWE-bench predictions JSONL (`instance_id`, `model_patch`,
`model_name_or_path`), a single .diff, or a folder of `<task>.diff` / `<task>/model_patch.diff` (ISO-Bench)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from isobench_ray.agents.base import AgentConfigError, AgentOutcome, SessionContext, apply_in_session
from isobench_ray.schema import ReplaySpec, Task, content_hash


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except UnicodeDecodeError:
        raise AgentConfigError(f"{path}: not a text patch (binary or not UTF-8); a patch is the text `git diff --binary` writes") from None


def load_patches(source: Path, model_name: str | None = None) -> dict[str, str]:
    """Recorded patches keyed by instance id ("*" for a single diff that serves every task)."""
    if source.is_dir():
        patches = {p.stem: _text(p) for p in source.glob("*.diff")}
        patches |= {p.parent.name: _text(p) for p in source.glob("*/model_patch.diff")}
        return patches
    if source.suffix in (".jsonl", ".json"):
        patches: dict[str, str] = {}
        try:
            lines = _text(source).splitlines() if source.suffix == ".jsonl" else [json.dumps(r) for r in json.loads(_text(source))]
        except json.JSONDecodeError as exc:
            raise AgentConfigError(f"{source}:{exc.lineno}: not valid JSON ({exc.msg})") from None
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
        return {"*": _text(source)}
    raise AgentConfigError(f"{source}: no such patch file or folder")


def model_names(source: Path) -> list[str]:
    """The distinct model_name_or_path values of a predictions JSONL, in file order."""
    names: list[str] = []
    for n, line in enumerate(_text(source).splitlines(), 1):
        if line.strip():
            try:
                name = json.loads(line).get("model_name_or_path")
            except (json.JSONDecodeError, AttributeError) as exc:
                raise AgentConfigError(f"{source}:{n}: not a prediction record ({exc})") from None
            if name and str(name) not in names:
                names.append(str(name))
    return names


class ReplayAgent:
    executes_code = False

    def __init__(self, spec: ReplaySpec):
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
        return apply_in_session(ctx, patch, "replay.diff")
