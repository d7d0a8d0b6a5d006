"""Build the demo repository (minillm) from history/, with the same commit hashes on every machine.

    python tasks/demo/build_repo.py DEST        # prints {"slug": "full sha", ...} as JSON

Each folder history/NN-slug/ is one commit, applied in the order of NN: its files are full copies laid
over the tree (00-initial holds the whole initial tree), the paths listed in its DELETE file (one per
line) are removed, and its COMMIT_MSG is the commit message.

The hashes depend only on those files: author, committer and dates are fixed per step, every file is
written with mode 0644 and LF line endings, and git runs without user or system configuration,
templates or hooks. If DEST already holds exactly this history, nothing is done; otherwise DEST is
rebuilt (it must be empty, or a repository an earlier build made). Uses only the standard library and
the git command line. Importable: build(dest) -> {slug: sha}.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tasks/: the shared git helpers
import reproducible_git  # noqa: E402
from reproducible_git import BuildError, git, git_env  # noqa: E402

HISTORY = Path(__file__).resolve().parent / "history"
AUTHOR = ("minillm developers", "dev@minillm.invalid")
FIRST_COMMIT_TIME = 1717408800  # 2024-06-03 10:00 UTC; step n is committed n days and n hours later
MARKER = "minillm-demo-build.json"  # in DEST/.git: what the build was made from, and the commits it made
CONTROL_FILES = ("COMMIT_MSG", "DELETE")


def _steps() -> list[tuple[str, Path]]:
    """(slug, folder) in commit order."""
    folders = sorted(p for p in HISTORY.iterdir() if p.is_dir() and re.fullmatch(r"\d+-[a-z0-9-]+", p.name))
    if not folders:
        raise BuildError(f"no history/NN-slug folders in {HISTORY}")
    return [(folder.name.split("-", 1)[1], folder) for folder in folders]


def _read(path: Path) -> bytes:
    # A checkout with core.autocrlf may have given the files CRLF endings; the history has LF.
    return path.read_bytes().replace(b"\r\n", b"\n")


def _tree_files(folder: Path) -> list[tuple[str, bytes]]:
    """(path relative to the folder, content) of the files a step lays over the tree."""
    files = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_dir() or rel in CONTROL_FILES or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        files.append((rel, _read(path)))
    return files


def _fingerprint() -> str:
    """Digest of everything that determines the commits: this script, its git helpers and every step's files."""
    digest = hashlib.sha256(_read(Path(__file__)) + _read(Path(reproducible_git.__file__)))
    for slug, folder in _steps():
        control = [(name, _read(folder / name)) for name in CONTROL_FILES if (folder / name).is_file()]
        for rel, data in [("", slug.encode())] + control + _tree_files(folder):
            digest.update(f"{rel}\0{len(data)}\0".encode() + data)
    return digest.hexdigest()


def _existing(dest: Path, fingerprint: str, env: dict[str, str]) -> dict[str, str] | None:
    """The commits of DEST if an earlier build made them from exactly these files, else None."""
    try:
        recorded = json.loads((dest / ".git" / MARKER).read_text())
        if recorded["fingerprint"] != fingerprint:
            return None
        commits = recorded["commits"]
        history = git(dest, "rev-list", "--reverse", "refs/heads/main", env=env).split()
    except (OSError, ValueError, KeyError, BuildError):
        return None
    return commits if history == list(commits.values()) else None


def _is_earlier_build(dest: Path, env: dict[str, str]) -> bool:
    if (dest / ".git" / MARKER).is_file():
        return True
    if not (dest / ".git").is_dir():
        return False  # git would answer for a repository above it
    try:
        return git(dest, "log", "-1", "--format=%ae", env=env) == AUTHOR[1]
    except BuildError:
        return False


def _commit_all(repo: Path, home: str) -> dict[str, str]:
    env = git_env(home, AUTHOR)
    git(repo, "init", "-q", "--template=", env=env)
    git(repo, "symbolic-ref", "HEAD", "refs/heads/main", env=env)
    commits = {}
    for n, (slug, folder) in enumerate(_steps()):
        for rel, data in _tree_files(folder):
            target = repo / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            os.chmod(target, 0o644)
        if (folder / "DELETE").is_file():
            for rel in _read(folder / "DELETE").decode().split():
                (repo / rel).unlink()
        message = repo / ".git" / "COMMIT_MSG"
        message.write_bytes(_read(folder / "COMMIT_MSG"))
        step_env = git_env(home, AUTHOR, FIRST_COMMIT_TIME + n * (86400 + 3600))
        git(repo, "add", "-A", "--force", env=step_env)
        git(repo, "commit", "-q", "--no-verify", "--cleanup=strip", "-F", str(message), env=step_env)
        message.unlink()
        if slug in commits:
            raise BuildError(f"two history steps are named {slug!r}")
        commits[slug] = git(repo, "rev-parse", "HEAD", env=step_env)
    return commits


@contextmanager
def _locked(dest: Path):
    """One build of DEST at a time, across processes."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.parent / f".{dest.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build(dest: Path) -> dict[str, str]:
    """Make DEST hold the demo history (unless it already does); returns {slug: commit sha}."""
    dest = Path(dest).resolve()
    fingerprint = _fingerprint()
    with _locked(dest), tempfile.TemporaryDirectory(prefix="minillm-build-home-") as home:
        commits = _existing(dest, fingerprint, git_env(home, AUTHOR))
        if commits is not None:
            return commits
        if dest.exists() and any(dest.iterdir()) and not _is_earlier_build(dest, git_env(home, AUTHOR)):
            raise BuildError(f"{dest} exists and is not a demo build: refusing to replace it")
        work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.build-", dir=dest.parent))
        try:
            commits = _commit_all(work, home)
            (work / ".git" / MARKER).write_text(json.dumps({"fingerprint": fingerprint, "commits": commits}, indent=2))
            if dest.exists():
                shutil.rmtree(dest)
            work.rename(dest)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return commits


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: python tasks/demo/build_repo.py DEST", file=sys.stderr)
        return 2
    try:
        commits = build(Path(argv[0]))
    except BuildError as exc:
        print(f"build_repo: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(commits, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
