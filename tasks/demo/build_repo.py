"""Build the demo repository (minillm) from history/NN-slug/ overlays, with the same commit hashes everywhere.

    python tasks/demo/build_repo.py DEST      # prints {slug: sha} as JSON

Each history/NN-slug/ folder holds full copies of the files that change in that commit (00 holds the
whole initial tree), a COMMIT_MSG, and optionally a DELETE list. Author, committer, dates and file modes
are fixed and the user's git config is ignored, so the hashes depend only on these files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HISTORY = Path(__file__).resolve().parent / "history"
BASE_DATE = 1_700_000_000  # 2023-11-14, one day per commit after it
ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_AUTHOR_NAME": "minillm developers", "GIT_AUTHOR_EMAIL": "dev@minillm.invalid",
    "GIT_COMMITTER_NAME": "minillm developers", "GIT_COMMITTER_EMAIL": "dev@minillm.invalid", "TZ": "UTC",
}


def _git(dest: Path, *args: str, env: dict | None = None) -> str:
    return subprocess.run(["git", "-c", "core.autocrlf=false", "-c", "commit.gpgsign=false", "-c", "core.fileMode=false", *args],
                          cwd=dest, env={**ENV, **(env or {})}, check=True, capture_output=True, text=True).stdout.strip()


def steps() -> list[Path]:
    return sorted(p for p in HISTORY.iterdir() if p.is_dir())


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in HISTORY.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(HISTORY)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _existing(dest: Path) -> dict | None:
    marker = dest / ".git" / "minillm-history.json"
    return json.loads(marker.read_text()) if marker.exists() else None


def build(dest: Path) -> dict[str, str]:
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    _git(dest, "init", "-q", "-b", "main")
    shas: dict[str, str] = {}
    for n, step in enumerate(steps()):
        delete = step / "DELETE"
        if delete.exists():
            for rel in delete.read_text().split():
                (dest / rel).unlink()
        for src in sorted(step.rglob("*")):
            rel = src.relative_to(step)
            if src.is_dir() or rel.name in ("COMMIT_MSG", "DELETE") or "__pycache__" in rel.parts:
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(src.read_bytes())
            os.chmod(target, 0o644)
        date = f"@{BASE_DATE + n * 86400} +0000"
        _git(dest, "add", "-A")
        _git(dest, "commit", "-q", "-F", str(step / "COMMIT_MSG"), env={"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date})
        shas[step.name] = _git(dest, "rev-parse", "HEAD")
    (dest / ".git" / "minillm-history.json").write_text(json.dumps({"fingerprint": _fingerprint(), "shas": shas}))
    return shas


def ensure(dest: Path) -> dict[str, str]:
    """Build unless dest already holds exactly this history."""
    existing = _existing(Path(dest))
    if existing and existing.get("fingerprint") == _fingerprint():
        return existing["shas"]
    return build(Path(dest))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: build_repo.py DEST")
    print(json.dumps(ensure(Path(sys.argv[1])), indent=2))
