"""Git side of an attempt: one bare mirror per repository, and trees detached from its history.

An agent's tree is a fresh repository with a single commit holding the parent commit's files: `git log`
shows nothing of the future, so the human commit cannot be read from it. The patch is the diff against
that one commit, extracted by the harness.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import tarfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import git
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from isobench_ray.locks import file_lock
from isobench_ray.sandbox.base import Sandbox
from isobench_ray.schema import FailureCause, StageError, content_hash

# Scratch folders agents are told to use; never part of the patch.
SCRATCH_DIRS = (".bench_scratch", ".isobench")
_IDENTITY = {"GIT_AUTHOR_NAME": "isobench", "GIT_AUTHOR_EMAIL": "isobench@localhost",
             "GIT_COMMITTER_NAME": "isobench", "GIT_COMMITTER_EMAIL": "isobench@localhost"}


class PatchApplyError(RuntimeError):
    pass


_NOT_FOUND = ("does not exist", "not found", "not a git repository", "could not read from remote", "no such")


def mirror(url: str, cache_dir: Path, need: tuple[str, ...] = (), require: bool = True) -> Path:
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
    missing = missing_commits(path, need)
    if missing and require:
        raise StageError(FailureCause.commit_missing, f"{url} has no commit {', '.join(missing)}")
    return path


def missing_commits(mirror_path: Path, commits: tuple[str, ...]) -> list[str]:
    repo = git.Repo(mirror_path)
    return [c for c in commits if not _has(repo, c)]


@retry(stop=stop_after_attempt(3), wait=wait_exponential(min=2, max=30), reraise=True,
       retry=retry_if_exception_type(git.GitCommandError))
def _mirror(url: str, cache_dir: Path, need: tuple[str, ...]) -> Path:
    if "://" not in url and not url.startswith("git@") and not Path(url).exists():
        raise StageError(FailureCause.repo_missing, f"no repository at {url}")
    name = Path(url.rstrip("/")).name.removesuffix(".git") + "-" + content_hash(url, 8) + ".git"
    path = cache_dir / "mirrors" / name
    with file_lock(path.with_suffix(".lock")):
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
    # not repo.commit(): GitPython takes any 40-hex string for a commit without asking git
    try:
        repo.git.cat_file("-e", f"{commit}^{{commit}}")
        return True
    except git.GitCommandError:
        return False


def diff_between(mirror_path: Path, old: str, new: str) -> str:
    return git.Repo(mirror_path).git.diff(old, new, "--binary", "--full-index") + "\n"


def files_between(mirror_path: Path, old: str, new: str) -> list[str]:
    """Paths (from the repository root) that differ between two commits."""
    if old == new:
        return []
    return [f for f in git.Repo(mirror_path).git.diff(old, new, "--name-only").splitlines() if f]


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


def harness_git_dir(tree: Path) -> Path:
    """The harness's own record of a tree's starting commit, beside the tree and out of the agent's reach."""
    return tree.parent / f".{tree.name}.harness.git"


_SAFE_GIT = ("git", "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "core.autocrlf=false",
             "-c", "commit.gpgsign=false", "-c", "core.untrackedCache=false")


def _git_env(tree: Path) -> dict[str, str]:
    """git on a tree through the harness's git directory: the tree's own .git (its config, hooks,
    fsmonitor, commits) is never read, and no global or system configuration applies."""
    return {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(tree.parent), "GIT_DIR": str(harness_git_dir(tree)),
            "GIT_WORK_TREE": str(tree), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0", **_IDENTITY}


def _git(tree: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*_SAFE_GIT, *args], cwd=tree, env=_git_env(tree), check=True, capture_output=True, **kwargs)


def detached_tree(mirror_path: Path, commit: str, dest: Path) -> Path:
    """Write the files of `commit` to dest as a new one-commit repository with no link to the mirror.
    The harness keeps its own git directory for the tree (see _git); the agent gets a copy as dest/.git.
    A symbolic link at either place (left by code that ran in a writable scratch folder) is removed, never
    followed."""
    for path in (dest, harness_git_dir(dest)):
        if path.is_symlink():
            path.unlink()
        shutil.rmtree(path, ignore_errors=True)
    dest.mkdir(parents=True)
    buf = io.BytesIO()
    git.Repo(mirror_path).archive(buf, commit, format="tar")
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        tar.extractall(dest, filter="tar")
    _git(dest, "init", "-q", "--initial-branch=main")
    _git(dest, "add", "-A", "--force")
    _git(dest, "commit", "-q", "--allow-empty", "--no-verify", "-m", f"isobench: tree of {commit[:12]}")
    shutil.copytree(harness_git_dir(dest), dest / ".git")
    subprocess.run(["git", "config", "--file", str(dest / ".git" / "config"), "--unset", "core.worktree"], capture_output=True)
    return dest


def tracked_files(tree: Path) -> list[str]:
    """The files of a tree's starting commit (paths from its root), as the harness's own git directory lists them."""
    out = _git(tree, "ls-files", "-z").stdout.decode(errors="surrogateescape")
    return [f for f in out.split("\0") if f]


class TreeEscape(RuntimeError):
    """A write into a tree would leave it: through a folder that is a symbolic link out of the tree, or a path
    with `..`."""


def links_on_path(tree: Path, rel: str) -> list[str]:
    """The prefixes of `rel` (a, a/b, ..., rel itself) that are symbolic links in `tree`."""
    parts = Path(rel).parts
    return [str(Path(*parts[:i])) for i in range(1, len(parts) + 1) if (tree / Path(*parts[:i])).is_symlink()]


def write_in_tree(tree: Path, rel: str, data: bytes, mode: int = 0o644) -> Path:
    """Write tree/rel as a regular file without following a symbolic link, into a tree whose contents someone
    else controls (an agent's patch, code that ran there): a link at rel is removed first and the file is
    opened O_NOFOLLOW | O_EXCL; a folder on the way that is a link out of the tree raises TreeEscape, as do an
    absolute rel and `..`. Missing folders are made."""
    if not Path(rel).parts or Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise TreeEscape(f"{rel!r} is not a path inside the tree")
    root, folder = tree.resolve(), tree
    for part in Path(rel).parts[:-1]:
        folder = folder / part
        if folder.is_symlink() and not folder.resolve().is_relative_to(root):
            raise TreeEscape(f"{folder.relative_to(tree)} is a symbolic link out of the tree (to {os.readlink(folder)})")
        try:
            folder.mkdir(exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise TreeEscape(f"{folder.relative_to(tree)} is not a folder: {exc}") from None
    target = folder / Path(rel).name
    if target.is_dir() and not target.is_symlink():
        raise TreeEscape(f"{rel} is a folder, not a file")
    if target.is_symlink() or target.exists():
        target.unlink()
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:  # made again between the removal and the open: whatever it is, not written through
        raise TreeEscape(f"{rel} appeared again while it was being written") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return target


def apply_patch(sandbox: Sandbox, tree: Path, patch: str, patch_file: Path) -> str:
    """Apply a patch in `tree`, inside the sandbox where the tree is used; returns the method that worked.
    Raises PatchApplyError with git's words. `patch_file` is a path outside the tree the sandbox can read."""
    if not patch.strip():
        return "empty"
    sandbox.write_file(patch_file, patch)
    attempts = [("git apply", ["--whitespace=nowarn"]),
                ("git apply --recount --ignore-whitespace", ["--recount", "--ignore-whitespace", "--whitespace=nowarn"])]
    errors = []
    for method, flags in attempts:
        res = sandbox.exec(["git", "apply", *flags, str(patch_file)], cwd=tree, timeout_s=120,
                           log_path=patch_file.with_suffix(".apply.log"))
        if res.ok:
            return method
        errors.append(f"{method}: {res.output.strip()}")
    raise PatchApplyError("\n".join(errors))


@dataclass(frozen=True)
class ExtractedPatch:
    patch: str  # "" when too large
    files: list[str]
    size: int  # bytes of the changed files
    compressed: bytes | None = None  # gzip of the diff, when too large to keep as text


def extract_patch(tree: Path, max_bytes: int | None = None) -> ExtractedPatch:
    """The diff of everything changed in `tree` since its starting commit (new files included, scratch
    excluded, commits the agent made included), computed with the harness's own git directory. Changes
    larger than max_bytes are not returned as text: their diff is kept once, gzipped (at most 2 x max_bytes
    of it), for inspection."""
    excludes = [f":(exclude){d}" for d in SCRATCH_DIRS]
    _git(tree, "add", "-A", "--", ".", *excludes)
    base = _git(tree, "rev-list", "--max-parents=0", "HEAD", text=True).stdout.split()[0]
    files = _git(tree, "diff", "--cached", "--name-only", "-z", base, "--", ".", *excludes, text=True).stdout.split("\0")
    files = [f for f in files if f]
    size = sum((tree / f).stat().st_size for f in files if (tree / f).is_file())
    diff_args = ["diff", "--cached", "--binary", base, "--", ".", *excludes]
    if max_bytes is not None and size > max_bytes:
        return ExtractedPatch("", files, size, _gzip_head(tree, diff_args, 2 * max_bytes))
    patch = _git(tree, *diff_args).stdout.decode(errors="replace")
    return ExtractedPatch(patch if patch.endswith("\n") or not patch else patch + "\n", files, size)


def _gzip_head(tree: Path, diff_args: list[str], limit: int) -> bytes:
    """The first `limit` bytes of a diff, gzipped, streamed: a huge change never sits in memory whole."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb") as gz:
        with subprocess.Popen([*_SAFE_GIT, *diff_args], cwd=tree, env=_git_env(tree), stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL) as proc:
            left = limit
            while left > 0 and (chunk := proc.stdout.read(min(1 << 20, left))):
                gz.write(chunk)
                left -= len(chunk)
            proc.kill()
    return out.getvalue()
