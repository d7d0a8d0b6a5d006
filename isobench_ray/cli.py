"""`isobench`: the command line. Thin: parses options, calls the runner, prints where things are."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

# Quiet, offline defaults for libraries that phone home at import (users can override them).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import typer  # noqa: E402

from isobench_ray.config import Settings  # noqa: E402

app = typer.Typer(no_args_is_help=True, add_completion=False, help="ISO-Bench on Ray: agents, 3-way benchmarks, reports.")
tasks_app = typer.Typer(no_args_is_help=True, help="Work with task files.")
app.add_typer(tasks_app, name="tasks")


SANDBOX_HELP = ("local: agents that run code are contained (bubblewrap) or refused; docker: every session, validation "
                "and benchmark arm in its own container (ISOBENCH_DOCKER_IMAGE, docs/docker.md); none: agents run as "
                "plain processes (marked in the report).")
JUDGE_HELP = ("A litellm model string (repeatable: several judges vote), e.g. anthropic/claude-sonnet-4-5 or "
              "openai/NAME with --api-base; none: the rule-based judge.")


def _fail(message: str, code: int = 2) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _settings(rounds: int | None = None, warmup: int | None = None, max_rounds: int | None = None,
              ci_target: float | None = None, **more) -> Settings:
    if rounds is not None and max_rounds is not None and max_rounds < rounds:
        max_rounds = rounds  # "at least 5 rounds" with a smaller maximum means exactly 5
    given = {"rounds": rounds, "warmup_runs": warmup, "max_rounds": max_rounds, "ci_target_pct": ci_target, **more}
    try:
        return Settings(**{k: v for k, v in given.items() if v is not None})
    except ValueError as exc:  # pydantic's message names the setting
        _fail(f"bad setting: {exc}")


def _execute(tasks_file: str, agents: str, out: Path, agents_file: Optional[Path], **kwargs) -> None:
    from isobench_ray.agents import AgentConfigError, parse_agents
    from isobench_ray.report.frames import attempts_frame
    from isobench_ray.report.write import print_summary
    from isobench_ray.runner import PlanError, run
    from isobench_ray.store import RunStore
    from isobench_ray.tasks import TaskFileError

    try:
        specs = parse_agents(agents, agents_file)
        report = run(tasks_file, specs, out, **kwargs)
    except (PlanError, TaskFileError, AgentConfigError) as exc:
        _fail(str(exc))
    records = RunStore(out).records()
    print_summary(attempts_frame(records))
    settings = kwargs.get("settings")
    if settings is not None and settings.sandbox == "docker":  # the containers are gone; their logs are kept here
        typer.echo("\nContainer logs (agent.log: the session; validate_*.log: validation; bench/: every arm, server and run):")
        for record in records:
            typer.echo(f"  {record.attempt.id}: {out / 'attempts' / record.attempt.id}")
    typer.echo(f"\nReport: {report}\nPage:   {report.with_suffix('.html')}\nTable:  {out / 'attempts.parquet'}")


@app.command()
def demo(
    out: Path = typer.Option(Path("results/demo"), help="Run directory."),
    fresh: bool = typer.Option(False, "--fresh", help="Start over instead of resuming."),
    rounds: int = typer.Option(3, help="Interleaved rounds at least."),
    max_rounds: int = typer.Option(4, help="Rounds at most (kept low so the demo takes minutes)."),
    sandbox: str = typer.Option("local", help=SANDBOX_HELP),
    task: Optional[list[str]] = typer.Option(None, "--task", help="Only these demo tasks (repeatable)."),
) -> None:
    """Run human, noop and the bundled replays over the demo suite on a local Ray cluster (no GPU, no Docker)."""
    from isobench_ray import demo as demo_suite

    demo_suite.build_repo()
    _execute(str(demo_suite.TASKS_FILE), demo_suite.agents_arg(), out, None,
             settings=_settings(rounds=rounds, max_rounds=max_rounds, sandbox=sandbox), fresh=fresh, task_ids=task)


@app.command("run")
def run_cmd(
    tasks_file: str = typer.Argument(..., metavar="TASKS", help="Task file (.yaml, upstream .json/.jsonl) or hf:NAME[:CONFIG[:SPLIT]]."),
    agents: str = typer.Option(..., "--agents", help="Comma-separated: human, noop, replay:PATH[#model], or names from --agents-file."),
    out: Path = typer.Option(..., "--out", help="Run directory, e.g. results/RUN. Rerunning resumes it."),
    agents_file: Optional[Path] = typer.Option(None, help="YAML with `agents: [{name, kind, command, ...}]`."),
    rollouts: int = typer.Option(1, min=1, help="Attempts per task and agent."),
    task: Optional[list[str]] = typer.Option(None, "--task", help="Only these task ids (repeatable)."),
    repo: Optional[str] = typer.Option(None, help="Local clone or URL of the task repository (resolves missing parents)."),
    address: Optional[str] = typer.Option(None, help="Ray cluster address; default RAY_ADDRESS or a new local cluster."),
    num_cpus: Optional[int] = typer.Option(None, help="Logical CPUs of a new local cluster."),
    num_gpus: Optional[int] = typer.Option(None, help="Logical GPUs of a new local cluster."),
    rounds: Optional[int] = typer.Option(None, help="Interleaved rounds at least (default 3)."),
    max_rounds: Optional[int] = typer.Option(None, help="Rounds at most, while intervals are wider than --ci-target (default 8)."),
    ci_target: Optional[float] = typer.Option(None, help="Target half-width of the speedup intervals, percent (default 2)."),
    warmup: Optional[int] = typer.Option(None, help="Discarded warm-up runs after each server start."),
    runs_per_round: Optional[int] = typer.Option(None, help="Measured runs per server start and round (default 1)."),
    validate_server: Optional[bool] = typer.Option(None, "--validate-server/--no-validate-server",
                                                   help="Validation starts the server of a serving task (default on)."),
    host_cores: Optional[int] = typer.Option(None, help="Cores per GPU node kept for sessions and validation, never a slot's (default 2)."),
    fresh: bool = typer.Option(False, "--fresh", help="Delete the run directory first."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run recorded failures again."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Run the usable tasks even if others have errors."),
    sandbox: str = typer.Option("local", help=SANDBOX_HELP),
    server_timeout: Optional[float] = typer.Option(None, help="Seconds a server may take to answer (default 600)."),
    import_timeout: Optional[float] = typer.Option(None, help="Seconds the import check may take (default 300)."),
    setup_timeout: Optional[float] = typer.Option(None, help="Seconds a repository's setup command may take (default 3600)."),
    bench_timeout: Optional[float] = typer.Option(None, help="Seconds one benchmark run may take (default: the task's timeout_s)."),
    max_patch_mb: Optional[float] = typer.Option(None, help="Larger changes are patch_too_large (default 20)."),
    judge: Optional[list[str]] = typer.Option(None, "--judge", help=JUDGE_HELP),
    api_base: Optional[str] = typer.Option(None, "--api-base", help="OpenAI-compatible endpoint of the judges."),
) -> None:
    """Run agents over tasks: sessions, validation, 3-way benchmarks, scores, judges, report."""
    settings = _settings(rounds, warmup, max_rounds, ci_target, sandbox=sandbox, server_start_timeout_s=server_timeout,
                         runs_per_round=runs_per_round, validate_server=validate_server, host_cores=host_cores,
                         import_timeout_s=import_timeout, setup_timeout_s=setup_timeout, bench_timeout_s=bench_timeout,
                         max_patch_bytes=int(max_patch_mb * 1e6) if max_patch_mb else None,
                         judges=tuple(judge) if judge else None, judge_api_base=api_base)
    _execute(tasks_file, agents, out, agents_file, settings=settings, rollouts=rollouts, task_ids=task,
             repo=repo, address=address, num_cpus=num_cpus, num_gpus=num_gpus, fresh=fresh, retry_failed=retry_failed,
             skip_invalid=skip_invalid)


@tasks_app.command("validate")
def tasks_validate(
    paths: list[str] = typer.Argument(..., help="Task files or hf:NAME, one or more."),
    repo: Optional[str] = typer.Option(None, help="Local clone of the repository, to resolve missing parent commits."),
    fetch: bool = typer.Option(True, "--fetch/--no-fetch", help="Clone or fetch each repository into the cache and check both commits."),
) -> None:
    """Load every task of every file and report every problem with file, task id and field. Exit 1 if any
    task is unusable or a file cannot be read; each file is checked either way."""
    from isobench_ray.tasks import TaskFileError, check_sources, load_tasks

    failed = False
    for path in paths:
        if len(paths) > 1:
            typer.echo(f"== {path}")
        try:
            result = load_tasks(path, repo)
        except TaskFileError as exc:
            typer.echo(f"error: {exc}", err=True)
            failed = True
            continue
        if fetch:
            check_sources(result, Settings().cache_path)
        for problem in result.problems:
            typer.echo(str(problem))
        unusable = sorted({p.task_id for p in result.errors})
        failed = failed or bool(unusable)
        typer.echo(f"\n{path}: {result.records} records, {len(result.tasks)} usable tasks, {len(unusable)} unusable"
                   + (f": {', '.join(unusable)}" if unusable else ""))
    raise typer.Exit(1 if failed else 0)


@app.command()
def judge(
    run_dir: Path = typer.Argument(..., help="A run directory."),
    judge: Optional[list[str]] = typer.Option(None, "--judge", help=JUDGE_HELP),
    api_base: Optional[str] = typer.Option(None, "--api-base", help="OpenAI-compatible endpoint of the judges."),
    again: bool = typer.Option(False, "--again", help="Judge also what these judges judged already."),
) -> None:
    """Judge a finished run's patches against the human patches (only what is not judged yet), then report."""
    from isobench_ray.runner import PlanError, judge as judge_run

    if not (run_dir / "attempts").is_dir():
        _fail(f"{run_dir}: not a run directory (no attempts/)")
    try:
        path, sent = judge_run(run_dir, _settings(judges=tuple(judge) if judge else None, judge_api_base=api_base), again)
    except PlanError as exc:
        _fail(str(exc))
    typer.echo(f"{sent} attempts sent to the judges\nReport: {path}")


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="A run directory."),
    push_to_hub: Optional[str] = typer.Option(None, "--push-to-hub", metavar="REPO",
                                              help="Also upload the tables as a Hugging Face dataset (HF_TOKEN, HF_ENDPOINT)."),
    private: bool = typer.Option(False, "--private", help="Create the dataset private."),
) -> None:
    """Rebuild attempts.parquet, report.md and report.html from a run directory's records."""
    from isobench_ray.report.write import print_summary, write_report

    if not (run_dir / "attempts").is_dir():
        _fail(f"{run_dir}: not a run directory (no attempts/)")
    path, df = write_report(run_dir)
    print_summary(df)
    typer.echo(f"\nReport: {path}\nPage:   {path.with_suffix('.html')}")
    if push_to_hub:
        from huggingface_hub import constants

        from isobench_ray.report.hub import push_to_hub as push

        constants.HF_HUB_OFFLINE = False  # the CLI defaults to offline for everything else; this asks for the hub
        typer.echo(f"Pushed: {push(run_dir, push_to_hub, private=private)}")


@app.command()
def status(run_dir: Path = typer.Argument(..., help="A run directory, finished or in progress.")) -> None:
    """Where a run stands: attempts done by status and cause, what is running, what is queued."""
    import collections

    from isobench_ray.store import RunStore

    store = RunStore(run_dir)
    plan = store.read_json("plan.json")
    if plan is None:
        _fail(f"{run_dir}: not a run directory (no plan.json)")
    records = store.records()
    by_status = collections.Counter(r.status.value for r in records)
    causes = collections.Counter(r.failure_cause.value for r in records if r.failure_cause)
    live = store.read_json("status.json") or {}
    typer.echo(f"{run_dir}: {len(records)}/{len(plan)} attempts done " + str(dict(by_status)))
    if causes:
        typer.echo("failure causes: " + ", ".join(f"{k} {v}" for k, v in causes.most_common()))
    if live.get("running"):
        typer.echo(f"running (driver's last word): {live['running']}, queued for a benchmark slot: {live.get('queued_for_benchmark', 0)}")
    recorded = (store.read_json("run.json") or {}).get("settings", {})
    if recorded.get("sandbox") == "docker":  # this node's image cache: what a full disk would come from
        from isobench_ray.sandbox import SandboxUnavailable, make_sandboxes

        fields = {k: v for k, v in recorded.items() if k.startswith("docker_") or k in ("sandbox", "cache_dir")}
        try:
            cache = make_sandboxes(Settings(**fields)).images().report()
        except (SandboxUnavailable, ValueError) as exc:
            typer.echo(f"image cache: not readable here ({exc})")
        else:
            typer.echo(f"image cache on this node: {len(cache['images'])} images, {cache['total_gb']} GB; "
                       f"{cache['free_gb']} GB free (evicting under {cache['min_free_gb']} GB)")
            for image in sorted(cache["images"], key=lambda i: i["last_used"] or 0, reverse=True):
                typer.echo(f"  {', '.join(image['tags']) or image['id']}: {image['gb']} GB"
                           + (", in use" if image["in_use"] else ""))


@app.command("parse-metrics")
def parse_metrics_cmd(
    file: Path = typer.Argument(..., help="Benchmark output (text log or result JSON)."),
    kind: Optional[str] = typer.Option(None, help="serving | latency | throughput | one_batch | ..."),
) -> None:
    """Print the metrics parsed from a benchmark's output as one JSON object."""
    from isobench_ray.engines.parsing import NoMetricsError, parse_metrics

    text = file.read_text(errors="replace")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    as_json = isinstance(data, dict)
    try:
        metrics = parse_metrics(None if as_json else text, json_data=data if as_json else None, kind=kind)
    except NoMetricsError as exc:
        typer.secho(f"{file}: {exc}\n--- last lines ---\n{exc.tail}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(metrics, indent=2, default=str))


def main() -> None:
    sys.exit(app())


if __name__ == "__main__":
    main()
