"""Git side of an attempt: one bare mirror per repository, and trees detached from its history.

An agent's tree is a fresh repository with a single commit holding the parent commit's files: `git log`
shows nothing of the future, so the human commit cannot be read from it. The patch is the diff against
that one commit, extracted by the harness.
"""

from __future__ import annotations

import fcntl
import io
import shutil
import subprocess
import tarfile
from contextlib import contextmanager
from pathlib import Path

import git
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from isobench_ray.models import content_hash

# Scratch folders agents are told to use; never part of the patch.
SCRATCH_DIRS = (".bench_scratch", ".isobench")
_IDENTITY = {"GIT_AUTHOR_NAME": "isobench", "GIT_AUTHOR_EMAIL": "isobench@localhost",
             "GIT_COMMITTER_NAME": "isobench", "GIT_COMMITTER_EMAIL": "isobench@localhost"}


class PatchApplyError(RuntimeError):
    pass


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


@retry(stop=stop_after_attempt(3), wait=wait_exponential(min=2, max=30), reraise=True,
       retry=retry_if_exception_type(git.GitCommandError))
def mirror(url: str, cache_dir: Path, need: tuple[str, ...] = ()) -> Path:
    """The shared bare mirror of `url` under cache_dir, cloned once (file-locked across processes) and
    fetched again when it lacks a commit in `need`. Network hiccups are retried with backoff."""
    name = Path(url.rstrip("/")).name.removesuffix(".git") + "-" + content_hash(url, 8) + ".git"
    path = cache_dir / "mirrors" / name
    with _locked(path):
        if not (path / "HEAD").exists():
            tmp = path.with_name(path.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            git.Repo.clone_from(url, tmp, mirror=True)
            tmp.rename(path)
        repo = git.Repo(path)
        if any(not _has(repo, c) for c in need):
            repo.git.fetch("--all", "--prune")
    return path


def _has(repo: git.Repo, commit: str) -> bool:
    try:
        repo.commit(commit)
        return True
    except (ValueError, git.BadName, git.GitCommandError):
        return False


def diff_between(mirror_path: Path, old: str, new: str) -> str:
    return git.Repo(mirror_path).git.diff(old, new, "--binary", "--full-index") + "\n"


@contextmanager
def scratch(work_root: Path, attempt_id: str, stage: str):
    """A fresh folder for one stage of one attempt, removed afterwards whatever happens (full disks lost
    whole runs upstream: nothing a stage leaves behind may accumulate)."""
    base = work_root / attempt_id / stage
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)
        try:
            base.parent.rmdir()
        except OSError:
            pass  # another stage of the attempt still has its folder


def _init_repo(dest: Path, message: str) -> git.Repo:
    repo = git.Repo.init(dest, initial_branch="main")
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "isobench")
        cw.set_value("user", "email", "isobench@localhost")
        cw.set_value("commit", "gpgsign", "false")
        cw.set_value("core", "autocrlf", "false")
    repo.git.add("-A", "--force")
    repo.git.commit("-q", "--allow-empty", "--no-verify", "-m", message, env=_IDENTITY)
    return repo


def detached_tree(mirror_path: Path, commit: str, dest: Path) -> Path:
    """Write the files of `commit` to dest as a new one-commit repository with no link to the mirror."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    buf = io.BytesIO()
    git.Repo(mirror_path).archive(buf, commit, format="tar")
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        tar.extractall(dest, filter="tar")
    _init_repo(dest, f"isobench: tree of {commit[:12]}")
    return dest


def apply_patch(tree: Path, patch: str) -> str:
    """Apply a patch in `tree`; returns the method that worked. Raises PatchApplyError with git's words."""
    if not patch.strip():
        return "empty"
    attempts = [("git apply", ["--whitespace=nowarn"]), ("git apply --recount --ignore-whitespace", ["--recount", "--ignore-whitespace", "--whitespace=nowarn"])]
    errors = []
    for method, flags in attempts:
        proc = subprocess.run(["git", "apply", *flags, "-"], cwd=tree, input=patch.encode(), capture_output=True)
        if proc.returncode == 0:
            return method
        errors.append(f"{method}: {proc.stderr.decode(errors='replace').strip()}")
    raise PatchApplyError("\n".join(errors))


def extract_patch(tree: Path) -> tuple[str, list[str]]:
    """The diff of everything changed in `tree` since its one commit (new files included, scratch excluded)."""
    repo = git.Repo(tree)
    excludes = [f":(exclude){d}" for d in SCRATCH_DIRS]
    repo.git.add("-A", "--", ".", *excludes)
    base = repo.git.rev_list("--max-parents=0", "HEAD").splitlines()[0]
    patch = repo.git.diff("--cached", "--binary", base, "--", ".", *excludes)
    files = repo.git.diff("--cached", "--name-only", base, "--", ".", *excludes).splitlines()
    return (patch + "\n" if patch else ""), files
