"""Git with the same commit hashes on every machine, for the build scripts of tasks/demo and tasks/vllm-cpu.

Standard library only: each build script runs under its own interpreter (the harness's, or the engine
environment's) and imports this file from the folder above it. No user or system configuration is read, and
author, committer and dates are fixed, so the same files give the same commits.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

GIT_FLAGS = ["-c", "core.autocrlf=false", "-c", "core.fileMode=false", "-c", "core.safecrlf=false",
             "-c", "commit.gpgsign=false"]


class BuildError(RuntimeError):
    pass


def git_env(home: str, author: tuple[str, str], timestamp: int | None = None) -> dict[str, str]:
    """The environment of every git call: an empty HOME, no configuration, `author` as author and committer,
    and, for a commit, its fixed date."""
    env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "HOME": home, "XDG_CONFIG_HOME": home,
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "LC_ALL": "C", "TZ": "UTC",
           "GIT_AUTHOR_NAME": author[0], "GIT_AUTHOR_EMAIL": author[1],
           "GIT_COMMITTER_NAME": author[0], "GIT_COMMITTER_EMAIL": author[1]}
    if timestamp is not None:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = f"{timestamp} +0000"
    return env


def git(repo: Path, *args: str, env: dict[str, str]) -> str:
    proc = subprocess.run(["git", *GIT_FLAGS, *args], cwd=repo, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"git {' '.join(args)} failed in {repo}:\n{proc.stderr.strip()}")
    return proc.stdout.strip()
