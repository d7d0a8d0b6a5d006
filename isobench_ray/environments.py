"""Which engine build each arm runs on, and whether its tree can run there unbuilt.

An arm's engine comes from its repository entry (RepoSpec): an environment per commit (`python` or `image`
naming `{commit}`/`{short}`: a published per-commit build, installed or baked into an image beforehand), or
one build made at `build.commit` with each arm's tree overlaid on it for the Python (as vLLM's precompiled
development installs do), or a build in every tree (`setup_command`). The overlay is only sound while the
tree's compiled sources are those the build was made from; an arm that differs in one is `needs_rebuild`
and is never benchmarked unbuilt. The rules are pure functions (the caller lists the changed files,
workspace.files_between); `prepare` makes an arm's environment present on this node, through wheel_envs and
the sandbox factory (an image pulled, or built from the repository's Dockerfile template).
"""

from __future__ import annotations

import functools
import os
from contextlib import ExitStack
from fnmatch import fnmatch
from pathlib import Path

from isobench_ray import wheel_envs
from isobench_ray.config import Settings
from isobench_ray.sandbox.base import ImageMissing, SandboxFactory, images_of
from isobench_ray.schema import COMPILED_FILES, FailureCause, StageError, Task, per_commit


def prepare(task: Task, commit: str, settings: Settings, sandboxes: SandboxFactory,
            held: ExitStack) -> tuple[dict[str, str], str | None]:
    """(the variables, the image) of the engine at `commit` for a sandbox on this node: its per-commit wheel
    installed (held until `held` closes), its image pulled or built. error/image_missing, build_missing."""
    python = wheel_envs.ensure(task.repo, commit, settings.paths.cache, settings.docker.envs_min_free_gb,
                               held) if task.repo.wheel else None
    image = task.image(commit)
    images = images_of(sandboxes) if image else None  # None: local processes, where images do not apply
    if images is not None:
        dockerfile = Path(task.repo.dockerfile) if task.repo.dockerfile else None
        try:
            images.ensure(image, dockerfile, {"COMMIT": commit, "SHORT": commit[:12]})
        except ImageMissing as exc:
            raise StageError(FailureCause.image_missing, str(exc)) from None
    return task.engine_env(os.environ.get("PATH", os.defpath), commit, python=python), image


def build_commit(task: Task, arm: str) -> str | None:
    """The commit the arm's engine build was made from; None when the task does not say (nothing to check),
    or when every tree is built (`setup_command`)."""
    if task.repo.setup_command:
        return None
    if task.per_commit_environment:
        return task.arm_commit(arm)
    return task.repo.build.commit if task.repo.build else None


def compiled_changes(files: list[str], patterns: tuple[str, ...] = COMPILED_FILES) -> list[str]:
    """The files among `files` (paths from the repository root) whose change needs a new build."""
    return sorted(f for f in set(files) if any(fnmatch(f, p) for p in patterns))


def rebuild_reason(task: Task, arm: str, changed: list[str]) -> str | None:
    """Why `arm` cannot run on its build: `changed` are the files its tree differs in from build_commit
    (the agent's patch included). None: it can."""
    built_at = build_commit(task, arm)
    if built_at is None:
        return None
    patterns = task.repo.build.compiled if task.repo.build else COMPILED_FILES
    compiled = compiled_changes(changed, patterns)
    if not compiled:
        return None
    shown = ", ".join(compiled[:8]) + (f" and {len(compiled) - 8} more" if len(compiled) > 8 else "")
    return (f"the {arm} arm changes compiled code ({shown}) that its engine build (made at {built_at[:12]}) does "
            "not have; it is not benchmarked unbuilt. Give each commit its own build (repo.python or repo.image "
            "with {commit}) or a setup_command that builds each tree")


def missing_images(plan: list, sandboxes: SandboxFactory) -> dict[str, str]:
    """Before the run: the attempts whose container images cannot be had (not on the engine, no Dockerfile
    template, and the registry says it knows no such image), each with the reason: recorded as
    error/image_missing then, before any agent session. An image asked for by several attempts is looked up
    once; any other answer (a registry that does not answer now, or wants credentials) leaves the question to
    the stage on the node, which pulls. `check_images_at_plan` off: nothing is asked. Sandboxes without
    images (local): nothing is missing."""
    found: dict[str, str | None] = {}
    images = functools.cache(lambda: images_of(sandboxes))  # asked with the first image (the engine is reached then)

    def why_missing(image: str, dockerfile: Path | None) -> str | None:
        if image not in found:
            try:
                if (store := images()) is not None:
                    store.locate(image, dockerfile)
                found[image] = None
            except ImageMissing as exc:
                found[image] = str(exc)
        return found[image]

    missing = {}
    for attempt, task, agent in plan:
        dockerfile = Path(task.repo.dockerfile) if task.repo.dockerfile else None
        wanted = [(task.image(c), dockerfile) for c in dict.fromkeys((task.parent_commit, task.human_commit))]
        reasons = [why for image, df in wanted if image and (why := why_missing(image, df))]
        if agent.spec.image and (why := why_missing(per_commit(agent.spec.image, task.parent_commit), None)):
            reasons.append(f"agent {agent.spec.name}: {why}")
        if reasons:
            missing[attempt.id] = "\n".join(reasons)
    return missing
