"""`isobench demo` and `isobench run`: plan, drive, judge and report a run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from isobench_ray.cli.app import JUDGE_HELP, _fail, _opt, _settings, app
from isobench_ray.config import setting_help


def resolve_out(out: Path) -> Path:
    """Where a run writes. Inside a Ray job the working directory is Ray's temporary copy of the checkout, so
    a relative --out goes under ISOBENCH_RESULTS_ROOT (runtime_envs/*.yaml set it; default
    ~/isobench-results) instead of vanishing with the copy; the job's first log lines say where."""
    if out.is_absolute() or "RAY_JOB_CONFIG_JSON_ENV_VAR" not in os.environ:
        return out
    root = Path(os.environ.get("ISOBENCH_RESULTS_ROOT") or Path.home() / "isobench-results").expanduser()
    resolved = root / out
    typer.echo(f"isobench: running in a Ray job: results go to {resolved} (ISOBENCH_RESULTS_ROOT/{out})")
    return resolved


def _execute(tasks_file: str, agents: str, out: Path, agents_file: Optional[Path], **kwargs) -> None:
    import polars as pl

    from isobench_ray import demo as demo_suite
    from isobench_ray.agents import AgentConfigError, parse_agents
    from isobench_ray.report.write import print_summary
    from isobench_ray.runner import DryRun, PlanError, run
    from isobench_ray.tasks import TaskFileError

    out = resolve_out(out)
    if Path(tasks_file).resolve() == demo_suite.TASKS_FILE.resolve():
        demo_suite.build_repo()  # deterministic and small: present wherever the checkout is (a Ray job's copy too)
    try:
        specs = parse_agents(agents, agents_file)
        report = run(tasks_file, specs, out, **kwargs)
    except (PlanError, TaskFileError, AgentConfigError) as exc:
        _fail(str(exc))
    except DryRun as needs:
        typer.echo(f"Dry run, nothing started or written:\n{needs}")
        return
    except KeyboardInterrupt:
        _fail(f"\ninterrupted: every finished attempt is kept in {out}; rerun the same command to resume", code=130)
    attempts = pl.read_parquet(out / "attempts.parquet")  # what the report just wrote, not every record again
    print_summary(attempts)
    settings = kwargs.get("settings")
    if settings is not None and settings.sandbox.kind == "docker":  # the containers are gone; their logs are kept here
        typer.echo("\nContainer logs (agent.log: the session; validate_*.log: validation; bench/: every arm, server and run):")
        for attempt_id in attempts.get_column("attempt_id"):
            typer.echo(f"  {attempt_id}: {out / 'attempts' / attempt_id}")
    typer.echo(f"\nReport: {report}\nPage:   {report.with_suffix('.html')}\nTable:  {out / 'attempts.parquet'}")


@app.command()
def demo(
    out: Path = typer.Option(Path("results/demo"), help="Run directory."),
    fresh: bool = typer.Option(False, "--fresh", help="Start over instead of resuming."),
    rounds: int = typer.Option(3, help="Interleaved rounds at least."),
    max_rounds: int = typer.Option(4, help="Rounds at most (kept low so the demo takes minutes)."),
    sandbox: str = typer.Option("local", help=setting_help("sandbox")),
    task: Optional[list[str]] = typer.Option(None, "--task", help="Only these demo tasks (repeatable)."),
) -> None:
    """Run human, noop and the bundled replays over the demo suite on a local Ray cluster (no GPU, no Docker)."""
    from isobench_ray import demo as demo_suite

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
    rounds: Optional[int] = _opt("rounds"),
    max_rounds: Optional[int] = _opt("max_rounds"),
    slot_budget: Optional[float] = _opt("slot_budget"),
    warmup: Optional[int] = _opt("warmup"),
    runs_per_round: Optional[int] = _opt("runs_per_round"),
    validate_server: Optional[bool] = _opt("validate_server", "--validate-server/--no-validate-server"),
    host_cores: Optional[int] = _opt("host_cores"),
    fresh: bool = typer.Option(False, "--fresh", help="Delete the run directory first."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run recorded failures again."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Plan only: print the attempts, engine builds, models and "
                                 "estimated GPU-hours the run needs; start and write nothing."),
    accept_changed: bool = typer.Option(False, "--accept-changed", help="Resume although tasks or agents changed: "
                                        "measure the new versions beside the old, labelled apart in the report."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Run the usable tasks even if others have errors."),
    sandbox: Optional[str] = _opt("sandbox"),
    server_timeout: Optional[float] = _opt("server_timeout"),
    import_timeout: Optional[float] = _opt("import_timeout"),
    setup_timeout: Optional[float] = _opt("setup_timeout"),
    bench_timeout: Optional[float] = _opt("bench_timeout"),
    max_patch_mb: Optional[float] = typer.Option(None, help="In MB: " + setting_help("max_patch_bytes")),
    judge: Optional[list[str]] = typer.Option(None, "--judge", help=JUDGE_HELP),
    api_base: Optional[str] = _opt("api_base", "--api-base"),
) -> None:
    """Run agents over tasks: sessions, validation, 3-way benchmarks, scores, judges, report."""
    settings = _settings(rounds=rounds, max_rounds=max_rounds, slot_budget=slot_budget, warmup=warmup,
                         runs_per_round=runs_per_round, validate_server=validate_server, host_cores=host_cores,
                         sandbox=sandbox, server_timeout=server_timeout, import_timeout=import_timeout,
                         setup_timeout=setup_timeout, bench_timeout=bench_timeout, judge=judge, api_base=api_base,
                         max_patch_bytes=int(max_patch_mb * 1e6) if max_patch_mb else None)
    _execute(tasks_file, agents, out, agents_file, settings=settings, rollouts=rollouts, task_ids=task,
             repo=repo, address=address, num_cpus=num_cpus, num_gpus=num_gpus, fresh=fresh, retry_failed=retry_failed,
             skip_invalid=skip_invalid, accept_changed=accept_changed, dry_run=dry_run)
