"""The composition root: tasks + agents -> plan -> cluster -> report. What `isobench run` and `isobench demo` call."""

from __future__ import annotations

import hashlib
import platform
import shutil
import time
from pathlib import Path

from isobench_ray import __version__
from isobench_ray.agents import make_agent
from isobench_ray.judges import JudgePanel
from isobench_ray.schema import AgentSpec, Task, content_hash
from isobench_ray.pipeline import plan_attempts
from isobench_ray.report.write import write_report
from isobench_ray.config import Settings
from isobench_ray.environments import missing_images
from isobench_ray.store import RunStore
from isobench_ray.sandbox import SandboxUnavailable, make_sandboxes
from isobench_ray.store import RunDirBusy, RunLock
from isobench_ray.tasks import LoadResult, check_sources, load_tasks


class PlanError(ValueError):
    """The run cannot start: unusable tasks or agents. Nothing has been measured yet."""


def load_checked(tasks_path: str, repo: str | None = None, skip_invalid: bool = False,
                 cache_dir: Path | None = None) -> LoadResult:
    """Tasks that can run, or a PlanError naming every problem; with cache_dir, their repositories and
    commits are checked too (a mirror fetch)."""
    loaded = load_tasks(tasks_path, repo)
    if cache_dir is not None:
        check_sources(loaded, cache_dir)
    if loaded.errors and not skip_invalid:
        lines = "\n".join(str(p) for p in loaded.errors)
        raise PlanError(f"{len(loaded.errors)} problem(s) in {tasks_path}; fix them or pass --skip-invalid:\n{lines}")
    if not loaded.tasks:
        raise PlanError(f"{tasks_path}: no usable task")
    return loaded


def measurement_identity(settings: Settings) -> dict:
    """The measurement settings, and the content of the lm-eval task folder they name: a task YAML edited
    between two runs changes the accuracies as surely as another path would."""
    folder = Path(settings.lm_eval_include_path) if settings.lm_eval_include_path else None
    content = content_hash({str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest()
                            for f in sorted(folder.rglob("*")) if f.is_file()}, 16) if folder else None
    return settings.identity() | {"lm_eval_include_content": content}


def run_identity(tasks: list[Task], plan: list, agent_specs: list[AgentSpec], measurement: dict) -> dict:
    """What the numbers in a run directory depend on: measurement settings (`measurement_identity`) and every
    fingerprint."""
    agents = {a.spec.name: a for _, _, a in plan}
    return {
        "measurement": measurement,
        "tasks": {t.id: content_hash(t.fingerprint(), 16) for t in tasks},
        "agents": {s.name: {t.id: agents[s.name].fingerprint(t) for t in tasks if agents[s.name].covers(t)}
                   for s in agent_specs if s.name in agents},
    }


def changed_settings(out: Path, now: dict) -> list[str]:
    """How the measurement settings of the run in `out` differ from `now` (`measurement_identity`; [] for a
    new or matching run)."""
    previous = RunStore(out).read_json("run.json")
    if not previous:
        return []
    if "identity" not in previous:
        return ["the run was written by an older isobench that did not record its settings"]
    before = previous["identity"]["measurement"]
    # a setting added after the run was made: it ran with that setting's default (no include folder's content)
    defaults = measurement_identity(Settings.model_construct())
    return [f"{k}: {before.get(k, defaults[k])!r} in the run, {now[k]!r} now" for k in now
            if before.get(k, defaults[k]) != now[k]]


def check_resume(out: Path, measurement: dict) -> None:
    """Numbers measured under other settings must not mix with these: stop and say which setting differs."""
    changed = changed_settings(out, measurement)
    if changed:
        raise PlanError(f"{out} was measured with other settings ({'; '.join(changed)}). Resuming would mix "
                        f"numbers measured differently: pass --fresh to start over, or a new --out.")


def check_environments(tasks: list[Task], settings: Settings) -> None:
    """Each arm's engine, and what its checks read, can be reached where its commands run: a per-commit wheel
    environment lives on the node (wheel_envs.py), where containers do not see it; nor do they see an lm-eval
    task folder outside their mounts."""
    if settings.sandbox.kind != "docker":
        return
    include = settings.lm_eval_include_path
    if include and settings.check_correctness and not any(
            Path(include).is_relative_to(Path(m.split(":")[0]).resolve()) for m in settings.docker_mounts):
        raise PlanError(f"lm_eval_include_path: {include} is not inside any docker_mounts folder, so the arms' "
                        f"containers, where lm-eval runs, cannot read it: add it (or a folder above it) to "
                        f"ISOBENCH_DOCKER_MOUNTS, with the data its task YAMLs name")
    wheel = [t for t in tasks if t.repo.wheel]
    if wheel:
        lines = "\n".join(f"{t.source}: task {t.id}: repo.wheel: installed into a virtualenv on the node, which the "
                          f"containers do not see" for t in wheel)
        raise PlanError(f"--sandbox docker cannot run tasks whose engine is a per-commit wheel:\n{lines}\nBake the "
                        f"commit's wheel into an image per commit instead (repo.image \"...:{{short}}\" with a dockerfile "
                        f"template that installs it; docs/environments.md), or run with --sandbox local.")


def check_containment(agents: list, settings: Settings) -> None:
    """Agents that run code are contained, or run only when the user said so (--sandbox none)."""
    try:
        make_sandboxes(settings).check()
    except SandboxUnavailable as exc:
        raise PlanError(f"--sandbox {settings.sandbox.kind}: {exc}") from None
    runners = [a.spec.name for a in agents if a.executes_code]
    if runners and settings.sandbox.kind == "local" and settings.isolate_agents and not make_sandboxes(settings).can_isolate:
        raise PlanError(f"agents {', '.join(runners)} run code, and bubblewrap (bwrap), which contains them, is not "
                        f"installed here: install it (apt-get install bubblewrap), or pass --sandbox none to run "
                        f"them as plain processes that see this machine (the report marks those attempts)")


def run(tasks_path: str, agent_specs: list[AgentSpec], out: str | Path, settings: Settings, *, rollouts: int = 1,
        task_ids: list[str] | None = None, repo: str | None = None, address: str | None = None,
        num_cpus: int | None = None, num_gpus: int | None = None, fresh: bool = False, retry_failed: bool = False,
        skip_invalid: bool = False, show_progress: bool = True) -> Path:
    agents = [make_agent(spec) for spec in agent_specs]
    check_containment(agents, settings)
    out = Path(out)
    try:
        with RunLock(out):
            return _run_locked(tasks_path, agents, agent_specs, out, settings, rollouts=rollouts, task_ids=task_ids,
                               repo=repo, address=address, num_cpus=num_cpus, num_gpus=num_gpus, fresh=fresh,
                               retry_failed=retry_failed, skip_invalid=skip_invalid, show_progress=show_progress)
    except RunDirBusy as exc:
        raise PlanError(str(exc)) from None


def _run_locked(tasks_path: str, agents: list, agent_specs: list[AgentSpec], out: Path, settings: Settings, *,
                rollouts: int, task_ids: list[str] | None, repo: str | None, address: str | None, num_cpus: int | None,
                num_gpus: int | None, fresh: bool, retry_failed: bool, skip_invalid: bool, show_progress: bool) -> Path:
    if fresh:
        for child in out.iterdir():
            if child.name != ".lock":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    settings = settings.replace(run_dir=str(out.resolve()))
    if settings.lm_eval_include_path:  # read by the slots, from their own working directory: made absolute here
        include = Path(settings.lm_eval_include_path).resolve()
        if not include.is_dir():
            raise PlanError(f"lm_eval_include_path: {include} is not a folder (lm-eval task YAMLs)")
        settings = settings.replace(lm_eval_include_path=str(include))
    measurement = measurement_identity(settings)  # reads the lm-eval folder's files once
    check_resume(out, measurement)
    loaded = load_checked(tasks_path, repo, skip_invalid, cache_dir=settings.cache_path)
    tasks = [t for t in loaded.tasks if not task_ids or t.id in task_ids]
    check_environments(tasks, settings)
    plan = plan_attempts(tasks, agents, rollouts)
    store = RunStore(out, background_writes=True)
    store.write_json("plan.json", [a.model_dump() for a, _, _ in plan])
    store.write_json("tasks.json", [t.model_dump() for t in tasks])  # what the judges read, and a person
    store.write_json("run.json", {
        "tasks": str(tasks_path), "rollouts": rollouts, "identity": run_identity(tasks, plan, agent_specs, measurement),
        # env values may be secrets: only their names are written (their hashes are in the identity)
        "agents": [s.model_dump() | {"env": sorted(s.env)} for s in agent_specs],
        "settings": settings.flat(), "isobench_version": __version__, "python": platform.python_version(),
        "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    from isobench_ray import cluster  # Ray is imported only where the run needs it

    # before any session, not hours later
    unavailable = missing_images(plan, make_sandboxes(settings)) if settings.check_images_at_plan else {}
    cluster.connect(address, num_cpus, num_gpus)
    panel = JudgePanel(out, {t.id: t for t in tasks}, settings)
    try:
        cluster.Driver(store, plan, settings, retry_failed=retry_failed, show_progress=show_progress,
                       on_record=panel.submit, unavailable=unavailable).run()
    finally:
        for record in RunStore(out).records():  # attempts finished by an earlier run, not judged yet
            panel.submit(record)
        panel.close()
    report_path, _ = write_report(out)
    return report_path


def run_tasks(out: Path) -> list[Task]:
    """The tasks a run measured, as it recorded them."""
    data = RunStore(out).read_json("tasks.json")
    if data is None:
        raise PlanError(f"{out} has no tasks.json: not a run directory, or written by an older isobench")
    return [Task.model_validate(t) for t in data]


def judge(out: str | Path, settings: Settings, again: bool = False) -> tuple[Path, int]:
    """Judge a finished run: every attempt with a patch not judged yet by these judges (all with `again`).
    Returns the report and how many attempts were sent to the judges."""
    out = Path(out)
    recorded = (RunStore(out).read_json("run.json") or {}).get("settings", {})
    if recorded.get("cache_dir"):  # the run's git mirrors hold the human commits
        settings = settings.replace(cache_dir=recorded["cache_dir"])
    try:
        with RunLock(out):
            panel = JudgePanel(out, {t.id: t for t in run_tasks(out)}, settings)
            for record in RunStore(out).records():
                panel.submit(record, again=again)
            judged = panel.close()
            report_path, _ = write_report(out)
            return report_path, len(judged)
    except RunDirBusy as exc:
        raise PlanError(str(exc)) from None
