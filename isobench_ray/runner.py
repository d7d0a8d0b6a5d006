"""The composition root: tasks + agents -> plan -> cluster -> report. What `isobench run` and `isobench demo` call."""

from __future__ import annotations

import collections
import difflib
import hashlib
import json
import platform
import shutil
import sys
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from isobench_ray import __version__
from isobench_ray.agents import make_agent
from isobench_ray.config import Settings
from isobench_ray.environments import missing_images
from isobench_ray.judges import JudgePanel
from isobench_ray.pipeline import plan_attempts
from isobench_ray.plan_needs import describe, plan_needs
from isobench_ray.report.write import write_report
from isobench_ray.sandbox import SandboxUnavailable, make_sandboxes
from isobench_ray.schema import AgentSpec, Task, content_hash
from isobench_ray.store import RunDirBusy, RunLock, RunStore
from isobench_ray.tasks import LoadResult, check_sources, load_tasks


class PlanError(ValueError):
    """The run cannot start: unusable tasks or agents. Nothing has been measured yet."""


def load_checked(tasks_path: str, repo: str | None = None, skip_invalid: bool = False,
                 cache_dir: Path | None = None, for_run: bool = True) -> LoadResult:
    """Tasks that can run, or a PlanError naming every problem; with cache_dir, their repositories and
    commits are checked too (a mirror fetch: one that cannot be reached is an error `for_run`, a warning for
    a dry run, which runs nothing)."""
    loaded = load_tasks(tasks_path, repo)
    if cache_dir is not None:
        check_sources(loaded, cache_dir, for_run=for_run)
    if loaded.errors and not skip_invalid:
        lines = "\n".join(str(p) for p in loaded.errors)
        raise PlanError(f"{len(loaded.errors)} problem(s) in {tasks_path}; fix them or pass --skip-invalid:\n{lines}")
    if not loaded.tasks:
        raise PlanError(f"{tasks_path}: no usable task")
    return loaded


def measurement_identity(settings: Settings) -> dict:
    """The measurement settings, and the content of the lm-eval task folder they name: a task YAML edited
    between two runs changes the accuracies as surely as another path would."""
    folder = Path(settings.lm_eval.include_path) if settings.lm_eval.include_path else None
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


def changed_fingerprints(out: Path, identity: dict) -> tuple[list[str], set[tuple[str, str]]]:
    """The tasks and agents of `identity` (run_identity) whose fingerprint differs from the run's in `out`
    (an edited task's command, commits or model; an agent's command, model or prompt): a line for each, and
    the (task, agent) pairs whose attempts they change."""
    previous = (RunStore(out).read_json("run.json") or {}).get("identity")
    if not previous:
        return [], set()
    before_tasks, before_agents = previous.get("tasks", {}), previous.get("agents", {})
    tasks = sorted(t for t, h in identity["tasks"].items() if t in before_tasks and before_tasks[t] != h)
    lines = [f"task {t}: changed since the run measured it" for t in tasks]
    pairs = {(t, a) for t in tasks for a in identity["agents"]}
    for agent, per_task in identity["agents"].items():
        changed = sorted(t for t, fp in per_task.items() if t in before_agents.get(agent, {})
                         and before_agents[agent][t] != json.loads(json.dumps(fp, default=str)))
        if changed:
            lines.append(f"agent {agent}: its configuration changed (on {len(changed)} task(s), e.g. {changed[0]})")
            pairs |= {(t, agent) for t in changed}
    return lines, pairs


def supersede(store: RunStore, pairs: set[tuple[str, str]], planned: set[str]) -> None:
    """Attempts of the earlier versions of edited (task, agent) pairs: kept, and listed in superseded.json
    so that every table shows them apart from the new versions."""
    old = set(store.read_json("superseded.json") or [])
    old |= {r.attempt.id for r in store.records()
            if (r.attempt.task_id, r.attempt.agent) in pairs and r.attempt.id not in planned}
    store.write_json("superseded.json", sorted(old))


def check_resume(out: Path, measurement: dict, identity: dict | None = None, accept_changed: bool = False) -> None:
    """Numbers measured under other settings, or of other tasks or agents under the same names, must not mix
    with these: stop and say what differs (tasks and agents: unless the user accepts keeping both apart)."""
    changed = changed_settings(out, measurement)
    if changed:
        raise PlanError(f"{out} was measured with other settings ({'; '.join(changed)}). Resuming would mix "
                        f"numbers measured differently: pass --fresh to start over, or a new --out.")
    edited, _ = changed_fingerprints(out, identity) if identity else ([], set())
    if edited and not accept_changed:
        lines = "\n".join(f"  {line}" for line in edited)
        raise PlanError(f"{out} was measured with other versions of these tasks or agents:\n{lines}\nResuming would "
                        f"put both versions under one name: pass --fresh to start over, a new --out, or "
                        f"--accept-changed to measure the new versions beside the old (the report labels the old "
                        f"attempts '(earlier version)').")


def check_fresh(out: Path) -> None:
    """--fresh deletes a run folder: only one that is an isobench run (run.json) or empty, never a folder that
    holds other runs (`--out results --fresh` must not wipe every run)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise PlanError(f"--out {out}: not a folder")
    children = [c for c in out.iterdir() if c.name != ".lock"]
    if not children:
        return
    nested = sorted(str(r.parent) for r in out.glob("*/**/run.json") if r.parent != out)
    if nested:
        raise PlanError(f"--fresh would delete {out}, which holds other runs ({', '.join(nested[:3])}"
                        f"{', ...' if len(nested) > 3 else ''}): name the run's own folder")
    if not (out / "run.json").is_file():
        raise PlanError(f"--fresh would delete {out}, which is not an isobench run (no run.json) and is not "
                        f"empty: name a run folder, or an empty or new one")


def clear_run(out: Path) -> None:
    for child in out.iterdir():
        if child.name != ".lock":
            shutil.rmtree(child) if child.is_dir() else child.unlink()


def check_environments(tasks: list[Task], settings: Settings) -> None:
    """Each arm's engine, and what its checks read, can be reached where its commands run: a per-commit wheel
    environment lives on the node (wheel_envs.py), where containers do not see it; nor do they see an lm-eval
    task folder outside their mounts."""
    if settings.sandbox.kind != "docker":
        return
    include = settings.lm_eval.include_path
    if include and settings.correctness.enabled and not any(
            Path(include).is_relative_to(Path(m.split(":")[0]).resolve()) for m in settings.docker.mounts):
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
    if runners and settings.sandbox.kind == "local" and settings.sandbox.isolate_agents and not make_sandboxes(settings).can_isolate:
        raise PlanError(f"agents {', '.join(runners)} run code, and bubblewrap (bwrap), which contains them, is not "
                        f"installed here: install it (apt-get install bubblewrap), or pass --sandbox none to run "
                        f"them as plain processes that see this machine (the report marks those attempts)")
    if settings.sandbox.kind == "local" and settings.sandbox.isolate_arms and not make_sandboxes(settings).can_isolate:
        print("isobench: bubblewrap (bwrap) is not installed here: validation and the benchmark arms run the agents' "
              "patches as plain processes that can reach the other arms' trees (docs/security.md; tampering that stays "
              "in a tree is still caught by its hashes). apt-get install bubblewrap to contain them", file=sys.stderr)


class RunOptions(BaseModel):
    """How `run` plans and drives, beside the settings (which are the run's measurement and machinery)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    rollouts: int = 1
    task_ids: list[str] | None = None
    repo: str | None = None  # a local clone or URL of the task repository (resolves missing parents)
    address: str | None = None  # a Ray cluster; None: RAY_ADDRESS or a new local one
    num_cpus: int | None = None
    num_gpus: int | None = None
    fresh: bool = False  # delete the run folder first (only an isobench run's: check_fresh)
    retry_failed: bool = False
    skip_invalid: bool = False
    accept_changed: bool = False  # measure edited tasks or agents beside their earlier versions
    show_progress: bool = True
    dry_run: bool = False  # plan and say what the run needs (plan_needs), write and start nothing


class DryRun(Exception):
    """Raised by a dry run with what the plan needs, in words (nothing was written or started)."""


def run(tasks_path: str, agent_specs: list[AgentSpec], out: str | Path, settings: Settings, **options) -> Path:
    """Plan, drive, judge and report one run (options: RunOptions' fields). Returns report.md's path."""
    opts = RunOptions(**options)
    agents = [make_agent(spec) for spec in agent_specs]
    check_containment(agents, settings)
    out = Path(out)
    if opts.dry_run:  # nothing written, nothing started
        raise DryRun(describe(plan_needs(_plan(tasks_path, agents, out, settings, opts)[3], settings)))
    if opts.fresh:
        check_fresh(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with RunLock(out):
            return _run_locked(tasks_path, agents, agent_specs, out, settings, opts)
    except RunDirBusy as exc:
        raise PlanError(str(exc)) from None
    except OSError as exc:  # a read-only --out, or one that is a file
        raise PlanError(f"--out {out}: cannot write the run there ({exc.strerror or exc})") from None


def _plan(tasks_path: str, agents: list, out: Path, settings: Settings, opts: RunOptions):
    """(settings for this run, its measurement identity, tasks, plan): everything checked, nothing written."""
    # a work folder of this run's own: two runs on one node never share (or delete) each other's trees
    run_key = content_hash(str(out.resolve()), 12)
    settings = settings.replace(run_dir=str(out.resolve()), work_dir=str(Path(settings.paths.work_dir) / run_key))
    if settings.lm_eval.include_path:  # read by the slots, from their own working directory: made absolute here
        include = Path(settings.lm_eval.include_path).resolve()
        if not include.is_dir():
            raise PlanError(f"lm_eval_include_path: {include} is not a folder (lm-eval task YAMLs)")
        settings = settings.replace(lm_eval_include_path=str(include))
    measurement = measurement_identity(settings)  # reads the lm-eval folder's files once
    loaded = load_checked(tasks_path, opts.repo, opts.skip_invalid, cache_dir=settings.paths.cache,  # before any deletion
                          for_run=not opts.dry_run)
    tasks = [t for t in loaded.tasks if not opts.task_ids or t.id in opts.task_ids]
    unknown = sorted(set(opts.task_ids or ()) - {t.id for t in loaded.tasks})
    if unknown:
        known = sorted(t.id for t in loaded.tasks)
        hints = [f"{u}: no such task in {tasks_path}" + (f"; did you mean {', '.join(close)}?" if (
            close := difflib.get_close_matches(u, known, n=3, cutoff=0.5)) else "") for u in unknown]
        raise PlanError("--task " + "\n--task ".join(hints))
    check_environments(tasks, settings)
    plan = plan_attempts(tasks, agents, opts.rollouts)
    if not plan:
        raise PlanError("nothing to run: no agent covers any of the tasks")
    return settings, measurement, tasks, plan


def _run_locked(tasks_path: str, agents: list, agent_specs: list[AgentSpec], out: Path, settings: Settings,
                opts: RunOptions) -> Path:
    settings, measurement, tasks, plan = _plan(tasks_path, agents, out, settings, opts)
    identity = run_identity(tasks, plan, agent_specs, measurement)
    if opts.fresh:
        clear_run(out)
    check_resume(out, measurement, identity, opts.accept_changed)
    store = RunStore(out, background_writes=True)
    if opts.accept_changed:
        supersede(store, changed_fingerprints(out, identity)[1], {a.id for a, _, _ in plan})
    store.write_json("plan.json", [a.model_dump() for a, _, _ in plan])
    store.write_json("tasks.json", [t.model_dump() for t in tasks])  # what the judges read, and a person
    store.write_json("run.json", {
        "tasks": str(tasks_path), "rollouts": opts.rollouts, "planned": len(plan), "identity": identity,
        # env values may be secrets: only their names are written (their hashes are in the identity)
        "agents": [s.model_dump() | {"env": sorted(s.env)} for s in agent_specs],
        "settings": settings.flat(), "isobench_version": __version__, "python": platform.python_version(),
        "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    from isobench_ray import cluster  # Ray is imported only where the run needs it

    # before any session, not hours later
    unavailable = missing_images(plan, make_sandboxes(settings)) if settings.docker.check_images_at_plan else {}
    panel = JudgePanel(out, {t.id: t for t in tasks}, settings)
    _check_judges(panel)  # hours before the first verdict is wanted
    cluster.connect(opts.address, opts.num_cpus, opts.num_gpus)
    try:
        cluster.Driver(store, plan, settings, retry_failed=opts.retry_failed, show_progress=opts.show_progress,
                       on_record=panel.submit, unavailable=unavailable).run()
    finally:
        panel.submit_finished(RunStore(out))  # attempts finished by an earlier run, not judged yet
        panel.close()
    report_path, _ = write_report(out)
    return report_path


def run_tasks(out: Path) -> list[Task]:
    """The tasks a run measured, as it recorded them."""
    data = RunStore(out).read_json("tasks.json")
    if data is None:
        raise PlanError(f"{out} has no tasks.json: not a run directory, or written by an older isobench")
    return [Task.model_validate(t) for t in data]


class JudgingFailed(PlanError):
    """Every attempt sent came back without a verdict (the report was still written; no verdict was lost)."""


def _check_judges(panel: JudgePanel) -> None:
    causes = panel.check()
    if causes:
        lines = "\n".join(f"  {c}" for c in causes)
        raise PlanError(f"the judges cannot answer, so nothing was sent and every verdict is kept:\n{lines}\n"
                        f"Set the model's key (e.g. OPENAI_API_KEY), check --api-base, or judge without --judge "
                        f"(the rule-based judge).")


def judge(out: str | Path, settings: Settings, again: bool = False) -> tuple[Path, int]:
    """Judge a finished run: every attempt with a patch not judged yet by these judges (all with `again`).
    Returns the report and how many attempts got a verdict. The judges are checked first; a judging that
    fails never replaces an earlier verdict, and when every attempt sent failed, JudgingFailed says why."""
    out = Path(out)
    recorded = (RunStore(out).read_json("run.json") or {}).get("settings", {})
    if recorded.get("cache_dir"):  # the run's git mirrors hold the human commits
        settings = settings.replace(cache_dir=recorded["cache_dir"])
    try:
        with RunLock(out):
            panel = JudgePanel(out, {t.id: t for t in run_tasks(out)}, settings)
            _check_judges(panel)
            panel.submit_finished(RunStore(out), again=again)
            judged = panel.close()
            report_path, _ = write_report(out)
    except RunDirBusy as exc:
        raise PlanError(str(exc)) from None
    failed = [j for j in judged if j.judge_error]
    if judged and len(failed) == len(judged):
        causes = collections.Counter(j.judge_error.splitlines()[0][:200] for j in failed)
        lines = "\n".join(f"  {n} attempt(s): {cause}" for cause, n in causes.most_common())
        raise JudgingFailed(f"no attempt got a verdict ({len(failed)} sent); earlier verdicts are kept:\n{lines}")
    return report_path, len(judged) - len(failed)
