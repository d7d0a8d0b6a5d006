"""Git side of an attempt: one bare mirror per repository, and trees detached from its history.

An agent's tree is a fresh repository with a single commit holding the parent commit's files: `git log`
shows nothing of the future, so the human commit cannot be read from it. The patch is the diff against
that one commit, extracted by the harness.
"""

from __future__ import annotations

import fcntl
import io
import shutil
import tarfile
from contextlib import contextmanager
from pathlib import Path

import git
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from isobench_ray.sandbox.base import Sandbox
from isobench_ray.schema import FailureCause, StageError, content_hash

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


_NOT_FOUND = ("does not exist", "not found", "not a git repository", "could not read from remote", "no such")


def mirror(url: str, cache_dir: Path, need: tuple[str, ...] = ()) -> Path:
    """The shared bare mirror of `url` under cache_dir, cloned once (file-locked across processes) and
    fetched again when it lacks a commit in `need`. Network hiccups are retried with backoff; a repository
    that does not exist or a commit it does not have is the task's problem (StageError), never retried."""
    try:
        path = _mirror(url, cache_dir, need)
    except git.GitCommandError as exc:
        words = f"{exc.stderr or ''} {exc.stdout or ''}".strip()
        if any(w in words.lower() for w in _NOT_FOUND):
            raise StageError(FailureCause.repo_missing, f"cannot clone {url}: {words[-500:]}") from None
        raise
    missing = [c for c in need if not _has(git.Repo(path), c)]
    if missing:
        raise StageError(FailureCause.commit_missing, f"{url} has no commit {', '.join(missing)}")
    return path


@retry(stop=stop_after_attempt(3), wait=wait_exponential(min=2, max=30), reraise=True,
       retry=retry_if_exception_type(git.GitCommandError))
def _mirror(url: str, cache_dir: Path, need: tuple[str, ...]) -> Path:
    if "://" not in url and not url.startswith("git@") and not Path(url).exists():
        raise StageError(FailureCause.repo_missing, f"no repository at {url}")
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


def apply_patch(sandbox: Sandbox, tree: Path, patch: str, patch_file: Path) -> str:
    """Apply a patch in `tree`, inside the sandbox where the tree is used; returns the method that worked.
    Raises PatchApplyError with git's words. `patch_file` is a path outside the tree the sandbox can read."""
    if not patch.strip():
        return "empty"
    sandbox.write_file(patch_file, patch)
    attempts = [("git apply", ["--whitespace=nowarn"]), ("git apply --recount --ignore-whitespace", ["--recount", "--ignore-whitespace", "--whitespace=nowarn"])]
    errors = []
    for method, flags in attempts:
        res = sandbox.exec(["git", "apply", *flags, str(patch_file)], cwd=tree, timeout_s=120,
                           log_path=patch_file.with_suffix(".apply.log"))
        if res.ok:
            return method
        errors.append(f"{method}: {res.output.strip()}")
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
