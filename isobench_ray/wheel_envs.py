"""Engine environments from published per-commit builds: one virtualenv per (repository, commit) on each node.

vLLM publishes a wheel for every main-branch commit (the original harness installed them); a repository entry
names it with `wheel: "https://wheels.vllm.ai/{commit}/vllm-1.0.0.dev-cp38-abi3-manylinux1_x86_64.whl"`.
The first stage on a node that needs a commit's engine makes `<cache>/envs/<repo>-<short>/` with uv and
installs the wheel (its dependencies from the index); later stages reuse it. Node-wide file locks keep two
workers from building the same one, and a shared lock held while a stage uses an environment keeps it from
being evicted under it. Below `min_free_gb` of free space, unused environments go, least recently used first,
before a new one is made (the same rule as the image cache).

A wheel the host does not have (HTTP 404: no build was published for that commit) is `build_missing`, the
task's problem; anything else that fails (the network) is left to the stage's retries.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from isobench_ray.locks import LockBusy, file_lock
from isobench_ray.schema import FailureCause, RepoSpec, StageError, per_commit

STAMP = ".isobench-ready"  # written last: an environment without it was never finished
_NO_BUILD = ("404", "not found", "no such file")


def uv_binary() -> str:
    """uv, the installer (a dependency of this package: `uv` on PyPI ships the binary)."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if not found:
            raise RuntimeError("uv is not installed (pip install uv)") from None
        return found


def env_dir(cache_dir: Path, repo: RepoSpec, commit: str) -> Path:
    return Path(cache_dir) / "envs" / f"{repo.name}-{commit[:12]}"


def _free_gb(path: Path) -> float:
    return shutil.disk_usage(path).free / 1e9


def evict_unused(envs_root: Path, min_free_gb: float, keep: Path | None = None) -> list[str]:
    """While free space is under min_free_gb: remove the least recently used environment no stage holds."""
    removed: list[str] = []
    if not envs_root.is_dir():
        return removed
    candidates = sorted((p for p in envs_root.iterdir() if p.is_dir() and p != keep),
                        key=lambda p: (p / STAMP).stat().st_mtime if (p / STAMP).exists() else 0.0)
    for env in candidates:
        if _free_gb(envs_root) >= min_free_gb:
            break
        try:
            with file_lock(env.with_suffix(".use"), wait=False):  # held by a stage: kept
                shutil.rmtree(env, ignore_errors=True)
                removed.append(env.name)
        except LockBusy:
            continue
    return removed


def ensure(repo: RepoSpec, commit: str, cache_dir: Path, min_free_gb: float, stack: ExitStack,
           timeout_s: float = 3600) -> str:
    """The interpreter of the engine built at `commit` (installed from `repo.wheel` on first use). The
    environment stays held (not evictable) until `stack` closes."""
    assert repo.wheel, "only for repositories that name a per-commit wheel"
    env = env_dir(cache_dir, repo, commit)
    python = env / "bin" / "python"
    stack.enter_context(file_lock(env.with_suffix(".use"), shared=True))
    with file_lock(env.with_suffix(".build")):
        if not (env / STAMP).exists():
            evict_unused(env.parent, min_free_gb, keep=env)
            shutil.rmtree(env, ignore_errors=True)
            wheel = per_commit(repo.wheel, commit)
            uv = uv_binary()
            steps = [[uv, "venv", "-q", "-p", sys.executable, str(env)],
                     [uv, "pip", "install", "-q", "-p", str(python), wheel]]
            for argv in steps:
                res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                                     env={**os.environ, "VIRTUAL_ENV": ""})
                if res.returncode != 0:
                    shutil.rmtree(env, ignore_errors=True)
                    words = (res.stderr or res.stdout)[-2000:]
                    if argv[1] == "pip" and any(w in words.lower() for w in _NO_BUILD):
                        raise StageError(FailureCause.build_missing,
                                         f"no published build of {repo.name} at {commit[:12]}: {wheel}\n{words}")
                    raise RuntimeError(f"making the engine environment {env} failed ({' '.join(argv[:3])}):\n{words}")
        (env / STAMP).write_text(f"{time.time()}\n")  # its last use: what eviction goes by
    return str(python)
