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
# RAY_AUTH_MODE is not set here: a cluster this command starts gets token authentication (cluster.driver.connect),
# one it joins keeps what its owner chose (docs/security.md)
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import typer  # noqa: E402

from isobench_ray.config import Settings, setting_help  # noqa: E402

app = typer.Typer(no_args_is_help=True, add_completion=False, help="ISO-Bench on Ray: agents, 3-way benchmarks, reports.")
tasks_app = typer.Typer(no_args_is_help=True, help="Work with task files.")
app.add_typer(tasks_app, name="tasks")


JUDGE_HELP = ("A litellm model string (repeatable: several judges vote), e.g. anthropic/claude-sonnet-4-5 or "
              "openai/NAME with --api-base; none: the rule-based judge.")


def _fail(message: str, code: int = 2) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


# Options that set a setting: option name -> the setting's flat name (config.FLAT). Their help is the setting's
# own description and default (config.setting_help), so a setting is written once, in config.py.
OPTION_SETTINGS = {
    "rounds": "rounds", "max_rounds": "max_rounds", "slot_budget": "slot_budget_min", "warmup": "warmup_runs",
    "runs_per_round": "runs_per_round", "validate_server": "validate_server", "host_cores": "host_cores",
    "sandbox": "sandbox", "server_timeout": "server_start_timeout_s", "import_timeout": "import_timeout_s",
    "setup_timeout": "setup_timeout_s", "bench_timeout": "bench_timeout_s", "judge": "judges", "api_base": "judge_api_base",
}


def _opt(option: str, *flags: str, **kwargs):
    """A typer option whose help comes from the setting it sets."""
    return typer.Option(None, *flags, help=setting_help(OPTION_SETTINGS[option]), **kwargs)


def _settings(**options) -> Settings:
    """Settings from the options given (None: not given), by OPTION_SETTINGS, over the environment."""
    given = {OPTION_SETTINGS.get(k, k): v for k, v in options.items() if v is not None}
    if isinstance(given.get("judges"), list):
        given["judges"] = tuple(given["judges"])
    rounds, max_rounds = given.get("rounds"), given.get("max_rounds")
    if rounds is not None and max_rounds is not None and max_rounds < rounds:
        given["max_rounds"] = rounds  # "at least 5 rounds" with a smaller maximum means exactly 5
    try:
        return Settings(**given)
    except ValueError as exc:  # pydantic's message names the setting
        _fail(f"bad setting: {exc}")


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
    from isobench_ray.agents import AgentConfigError, parse_agents
    from isobench_ray.report.frames import agent_models, attempts_frame
    from isobench_ray.report.write import print_summary
    from isobench_ray.runner import DryRun, PlanError, run
    from isobench_ray.store import RunStore
    from isobench_ray.tasks import TaskFileError

    from isobench_ray import demo as demo_suite

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
    records = RunStore(out).records()
    print_summary(attempts_frame(records, models=agent_models(RunStore(out).read_json("run.json"))))
    settings = kwargs.get("settings")
    if settings is not None and settings.sandbox.kind == "docker":  # the containers are gone; their logs are kept here
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
            check_sources(result, Settings().paths.cache)
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
    api_base: Optional[str] = _opt("api_base", "--api-base"),
    again: bool = typer.Option(False, "--again", help="Judge also what these judges judged already."),
) -> None:
    """Judge a finished run's patches against the human patches (only what is not judged yet), then report."""
    from isobench_ray.runner import PlanError, judge as judge_run

    if not (run_dir / "attempts").is_dir():
        _fail(f"{run_dir}: not a run directory (no attempts/)")
    try:
        path, sent = judge_run(run_dir, _settings(judge=judge, api_base=api_base), again)
    except PlanError as exc:
        _fail(str(exc))
    typer.echo(f"{sent} attempts judged\nReport: {path}")


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
    """Where a run stands: attempts done by agent, status and cause; whether its driver runs, and what."""
    import collections
    import time

    import polars as pl

    from isobench_ray.store import RunLock, RunStore

    store = RunStore(run_dir)
    plan = store.read_json("plan.json")
    if plan is None:
        _fail(f"{run_dir}: not a run directory (no plan.json)")
    records = store.records()
    typer.echo(f"{run_dir}: {len(records)}/{len(plan)} attempts done")
    if records:
        counts = collections.Counter((r.attempt.agent, r.status.value, r.failure_cause.value if r.failure_cause else "")
                                     for r in records)
        table = pl.DataFrame([{"agent": a, "status": st, "cause": c, "attempts": n} for (a, st, c), n in counts.items()])
        with pl.Config(tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True, tbl_rows=200, fmt_str_lengths=60):
            typer.echo(table.sort("agent", "status", "cause"))
    live = store.read_json("status.json") or {}
    holder = RunLock.holder(run_dir)
    if holder:
        running = ", ".join(f"{stage} {n}" for stage, n in (live.get("running") or {}).items() if n) or "starting"
        typer.echo(f"running: driver {holder}; now {running}; queued for a benchmark slot: "
                   f"{live.get('queued_for_benchmark', 0)}")
    elif len(records) < len(plan):
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(live["updated"])) if live.get("updated") else "unknown"
        typer.echo(f"stopped: the driver is gone (its last word at {since}), {len(plan) - len(records)} attempts "
                   f"not done; rerun the same command to resume (nothing finished is redone)")
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


# ---------------------------------------------------------------- isobench images: the Docker engine's images here

images_app = typer.Typer(no_args_is_help=True, help="The Docker sandbox's images on this node (docs/docker.md).")
app.add_typer(images_app, name="images")
_HOST_OPTION = typer.Option(None, "--host", envvar="ISOBENCH_DOCKER_HOST",
                            help="The Docker engine's URL (default: DOCKER_HOST, else unix:///var/run/docker.sock).")
_CACHE_OPTION = typer.Option(None, "--cache-dir", envvar=["ISOBENCH_CACHE", "ISOBENCH_CACHE_DIR"],
                             help="Where the base tarball and the image-use record are kept (default: ~/.cache/isobench).")


@images_app.command("build")
def images_build(
    image: Optional[str] = typer.Option(None, "--image", envvar="ISOBENCH_DOCKER_IMAGE",
                                        help="The name to import it as (default: isobench-base:bookworm)."),
    host: Optional[str] = _HOST_OPTION,
    cache_dir: Optional[Path] = _CACHE_OPTION,
) -> None:
    """Build the base image with debootstrap and import it, unless the engine has it.

    The tarball is cached, keyed by the build script's content: a second build only imports it."""
    import time

    from isobench_ray.config import BASE_IMAGE
    from isobench_ray.sandbox import SandboxUnavailable
    from isobench_ray.sandbox.docker import client_for, ensure_base_image

    image = image or BASE_IMAGE
    started = time.monotonic()
    try:
        how = ensure_base_image(client_for(host), image, cache_dir, log=sys.stderr)
    except (SandboxUnavailable, RuntimeError) as exc:
        _fail(str(exc), 1)
    typer.echo(f"{image}: {how} in {time.monotonic() - started:.0f} s")


@images_app.command("list")
def images_list(
    host: Optional[str] = _HOST_OPTION,
    cache_dir: Optional[Path] = _CACHE_OPTION,
    min_free_gb: Optional[float] = typer.Option(None, envvar="ISOBENCH_DOCKER_MIN_FREE_GB",
                                                help="The eviction threshold to show (default: the sandbox's, 50)."),
    as_json: bool = typer.Option(False, "--json", help="The report as one JSON object."),
) -> None:
    """The node's image cache: images, size, use, free space.

    Each image with its size, whether a container uses it and when the harness last started one from it
    (what eviction goes by), and the free space of the engine's data root."""
    import time

    from isobench_ray.sandbox import SandboxUnavailable
    from isobench_ray.sandbox.docker import DockerSandboxes

    given = {"cache_dir": str(cache_dir) if cache_dir else None, "min_free_gb": min_free_gb}
    try:
        report = DockerSandboxes(host=host, **{k: v for k, v in given.items() if v is not None}).images().report()
    except SandboxUnavailable as exc:
        _fail(str(exc), 1)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(f"{len(report['images'])} images, {report['total_gb']} GB; {report['free_gb']} GB free "
               f"(evicting under {report['min_free_gb']} GB)")
    for image in sorted(report["images"], key=lambda i: i["last_used"] or 0, reverse=True):
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(image["last_used"])) if image["last_used"] else "never here"
        typer.echo(f"  {', '.join(image['tags']) or image['id']}: {image['gb']} GB, last used {used}"
                   + (", in use" if image["in_use"] else ""))


@app.command()
def regrade(
    run_dir: Path = typer.Argument(..., help="A run directory."),
    policy: str = typer.Option("strict", help="paper | strict | gso | swe-perf (scoring/policies.py)."),
    margin: Optional[float] = typer.Option(None, help="The equivalence margin, percent (default: the run's hard_band_pct, 5)."),
    method: Optional[str] = typer.Option(None, help="Intervals: independent | paired (default: scoring/stats.py's)."),
    out: Optional[Path] = typer.Option(None, help="Table to write (default RUN_DIR/regrade/POLICY.parquet)."),
) -> None:
    """Recompute every score of a run from its stored samples under a verdict policy (no GPU, no engine); the
    run's own files are only read. Prints the verdicts that flip against the run's own, and why."""
    import collections

    from isobench_ray.regrade import regrade as regrade_run
    from isobench_ray.scoring.policies import POLICIES

    if not (run_dir / "attempts").is_dir():
        _fail(f"{run_dir}: not a run directory (no attempts/)")
    if policy not in POLICIES or method not in (None, "independent", "paired"):
        _fail(f"--policy is one of {', '.join(POLICIES)}; --method independent or paired")
    result = regrade_run(run_dir, policy, margin, out, method)
    counts = collections.Counter(result.frame.get_column("hard_class").to_list())
    typer.echo(f"{run_dir}: {result.frame.height} attempts regraded under {policy}: "
               + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    own = "hard_class_ci" if policy == "strict" else "hard_class"
    typer.echo(f"{len(result.flips)} verdicts flip against the run's own ({own}):")
    for flip in result.flips:
        typer.echo(f"  {flip.attempt_id}: {flip.own} -> {flip.new}  ({flip.reason})")
    for attempt_id in result.skipped:
        typer.echo(f"  {attempt_id}: record.json does not fit this version's models, not regraded", err=True)
    typer.echo(f"Table: {result.out}")


@app.command()
def view(
    run_dir: Path = typer.Argument(..., help="A run directory with a report (isobench report writes one)."),
    port: int = typer.Option(7575, help="Port on 127.0.0.1."),
) -> None:
    """Serve a run's report and attempt pages on 127.0.0.1 (the files are also readable straight from disk)."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    if not (run_dir / "report.html").is_file():
        _fail(f"{run_dir}: no report.html; run `isobench report {run_dir}` first")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(run_dir.resolve()))
    with ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        typer.echo(f"Serving {run_dir} at http://127.0.0.1:{server.server_address[1]}/report.html (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


# ---------------------------------------------------------------- isobench clean: what dead runs left on this node


@app.command()
def clean(
    host: Optional[str] = _HOST_OPTION,
    cache_dir: Optional[Path] = _CACHE_OPTION,
    everything: bool = typer.Option(False, "--all", help="Every isobench container on the engine, live runs' too."),
) -> None:
    """Remove the sandbox containers whose driver (or the worker that made them) is gone, and what else dead
    runs left here: their containers' deadline folders, bubblewrap's empty process cgroups.

    Containers carry their run and their driver's process (labels isobench.run, isobench.driver, isobench.owner);
    a run does the same on a node before its first container, and a container whose driver died ends by itself
    within docker_ttl_margin_s (docs/security.md)."""
    from isobench_ray.config import DEFAULT_CACHE_DIR
    from isobench_ray.sandbox import SandboxUnavailable
    from isobench_ray.sandbox.docker.lifecycle import clean_node

    try:
        removed = clean_node(host, cache_dir or DEFAULT_CACHE_DIR, everything)
    except SandboxUnavailable as exc:  # bubblewrap's leftovers are gone; no engine to ask about containers
        typer.echo(f"no Docker engine to clean: {exc}")
        return
    typer.echo("\n".join(f"removed {line}" for line in removed) or "nothing to remove")


def main() -> None:
    sys.exit(app())


if __name__ == "__main__":
    main()
