"""What an arm's code may not do to the others, checked after every arm's step of a benchmark.

Each arm runs in its own sandbox, where the other arms' trees are not there to touch (docs/security.md);
a plain local sandbox (no bubblewrap) promises nothing of the kind, and this guard is then the only check.
Either way the evidence is the same: the baseline's and the human's tracked files hash as they did when the
arms were set up, the agent's copy of the benchmark script is still the baseline's, byte for byte and not a
link, and an arm's code left nothing running once its step was over. The agent's arm breaking any of these
is `failed/tampering` (a hack flag), never a measurement.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from isobench_ray.schema import Arm, FailureCause, StageError
from isobench_ray.workspace import links_on_path, tracked_files


def tree_digest(tree: Path, files: list[str]) -> dict[str, str]:
    """Each tracked file's content hash (a link: where it points; "missing" when gone)."""
    digest = {}
    for rel in files:
        path = tree / rel
        if path.is_symlink():
            digest[rel] = "link:" + str(path.readlink())
        elif path.is_file():
            digest[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            digest[rel] = "missing"
    return digest


@dataclass
class ArmGuard:
    trees: dict[Arm, Path]
    scripts: tuple[str, ...]  # the benchmark files the agent's tree has from the baseline's (relative paths)
    files: dict[Arm, list[str]]
    digests: dict[Arm, dict[str, str]]

    @classmethod
    def snapshot(cls, trees: dict[Arm, Path], scripts: tuple[str, ...]) -> "ArmGuard":
        """Taken once the arms are set up (patched, the scripts copied, `setup_command` run)."""
        guarded = {arm: trees[arm] for arm in ("baseline", "human")}
        files = {arm: tracked_files(tree) for arm, tree in guarded.items()}
        return cls(guarded | {"agent": trees["agent"]}, tuple(s for s in scripts if (trees["agent"] / s).is_file()),
                   files, {arm: tree_digest(guarded[arm], files[arm]) for arm in guarded})

    def changes(self, own: Arm | None = None) -> list[str]:
        """What differs from the snapshot, as a person would read it ([] when nothing). `own`: the tree of the
        arm whose step just ended, trusted code that may write in its own tree (its new state is kept)."""
        found = []
        for arm, before in self.digests.items():
            now = tree_digest(self.trees[arm], self.files[arm])
            changed = [rel for rel in before if now[rel] != before[rel]]
            if changed and arm == own:
                self.digests[arm] = now
            elif changed:
                found.append(f"the {arm} tree changed: " + ", ".join(changed[:5]) + (" ..." if len(changed) > 5 else ""))
        agent, baseline = self.trees["agent"], self.trees["baseline"]
        for script in self.scripts:
            if links_on_path(agent, script):
                found.append(f"the agent's copy of the benchmark script {script} became a symbolic link")
            elif not (agent / script).is_file() or (agent / script).read_bytes() != (baseline / script).read_bytes():
                found.append(f"the agent's copy of the benchmark script {script} was rewritten")
        return found

    def check(self, arm: Arm, left: list[str] | tuple[str, ...] = ()) -> None:
        """After `arm`'s step: StageError(tampering) when the other arms' trees or the script changed, or when the
        agent's arm left processes running (`left`: what its sandbox had to kill)."""
        problems = self.changes(own={"baseline": "baseline", "baseline2": "baseline", "human": "human"}.get(arm))
        if left and arm == "agent":
            problems.append("the agent's code left processes running after its step: " + "; ".join(left[:5]))
        if problems:
            raise StageError(FailureCause.tampering, f"after the {arm} arm's step: " + "; ".join(problems))
