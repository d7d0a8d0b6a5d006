"""The composition root: tasks + agents -> plan -> cluster -> report. What `isobench run` and `isobench demo` call."""

from __future__ import annotations

import json
import platform
import shutil
import time
from pathlib import Path

from isobench_ray import __version__
from isobench_ray.agents import make_agent
from isobench_ray.models import AgentSpec
from isobench_ray.pipeline import plan_attempts
from isobench_ray.report import write_report
from isobench_ray.settings import Settings
from isobench_ray.store import RunStore
from isobench_ray.tasks import LoadResult, load_tasks


class PlanError(ValueError):
    """The run cannot start: unusable tasks or agents. Nothing has been measured yet."""


def load_checked(tasks_path: str, repo: str | None = None, skip_invalid: bool = False) -> LoadResult:
    loaded = load_tasks(tasks_path, repo)
    if loaded.errors and not skip_invalid:
        lines = "\n".join(str(p) for p in loaded.errors)
        raise PlanError(f"{len(loaded.errors)} problem(s) in {tasks_path}; fix them or pass --skip-invalid:\n{lines}")
    if not loaded.tasks:
        raise PlanError(f"{tasks_path}: no usable task")
    return loaded


def run(tasks_path: str, agent_specs: list[AgentSpec], out: str | Path, settings: Settings, *, rollouts: int = 1,
        task_ids: list[str] | None = None, repo: str | None = None, address: str | None = None,
        num_cpus: int | None = None, num_gpus: int | None = None, fresh: bool = False, retry_failed: bool = False,
        skip_invalid: bool = False, show_progress: bool = True) -> Path:
    loaded = load_checked(tasks_path, repo, skip_invalid)
    tasks = [t for t in loaded.tasks if not task_ids or t.id in task_ids]
    agents = [make_agent(spec) for spec in agent_specs]
    plan = plan_attempts(tasks, agents, rollouts)
    out = Path(out)
    if fresh and out.exists():
        shutil.rmtree(out)
    store = RunStore(out, background_writes=True)
    store.write_json("plan.json", [a.model_dump() for a, _, _ in plan])
    store.write_json("run.json", {
        "tasks": str(tasks_path), "agents": [s.model_dump() for s in agent_specs], "rollouts": rollouts,
        "settings": settings.model_dump(), "isobench_version": __version__, "python": platform.python_version(),
        "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "tasks_hash": json.dumps(sorted(t.id for t in tasks)),
    })
    from isobench_ray import cluster  # Ray is imported only where the run needs it

    cluster.connect(address, num_cpus, num_gpus)
    cluster.Driver(store, plan, settings, retry_failed=retry_failed, show_progress=show_progress).run()
    report_path, _ = write_report(out)
    return report_path
