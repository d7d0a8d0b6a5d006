"""Commands that read a run or a task file: tasks validate, judge, report, status, regrade, view,
parse-metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from isobench_ray.cli.app import JUDGE_HELP, _fail, _opt, _settings, app, tasks_app
from isobench_ray.config import Settings


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
    from isobench_ray.runner import PlanError
    from isobench_ray.runner import judge as judge_run

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
        try:
            pushed = push(run_dir, push_to_hub, private=private)
        except Exception as exc:  # the hub's, the network's or the token's: the report above is written either way
            from isobench_ray.text import error_line

            _fail(f"the report is written, but pushing it to the hub as {push_to_hub} failed: {type(exc).__name__}: "
                  f"{error_line(str(exc), 300) or 'no detail'} (check the network, HF_TOKEN and HF_ENDPOINT)")
        typer.echo(f"Pushed: {pushed}")


@app.command()
def status(run_dir: Path = typer.Argument(..., help="A run directory, finished or in progress.")) -> None:
    """Where a run stands: attempts done by agent, status and cause; whether its driver runs, and what."""
    import collections
    import time

    import polars as pl

    from isobench_ray.store import RunLock, RunStore

    store = RunStore(run_dir)
    if not (store.root / "plan.json").exists():
        _fail(f"{run_dir}: not a run directory (no plan.json)")
    # how many were planned: run.json says it in one number; a run written before it did, plan.json's length
    planned = (store.read_json("run.json") or {}).get("planned")
    planned = planned if isinstance(planned, int) else len(store.read_json("plan.json"))
    records = list(store.finished().values())  # the index: one file, whatever the run's size
    typer.echo(f"{run_dir}: {len(records)}/{planned} attempts done")
    if records:
        counts = collections.Counter((r["agent"], r["status"], r["failure_cause"] or "") for r in records)
        table = pl.DataFrame([{"agent": a, "status": st, "cause": c, "attempts": n} for (a, st, c), n in counts.items()])
        with pl.Config(tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True, tbl_rows=200, fmt_str_lengths=60):
            typer.echo(table.sort("agent", "status", "cause"))
    live = store.read_json("status.json") or {}
    holder = RunLock.holder(run_dir)
    if holder:
        running = ", ".join(f"{stage} {n}" for stage, n in (live.get("running") or {}).items() if n) or "starting"
        typer.echo(f"running: driver {holder}; now {running}; queued for a benchmark slot: "
                   f"{live.get('queued_for_benchmark', 0)}")
    elif len(records) < planned:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(live["updated"])) if live.get("updated") else "unknown"
        typer.echo(f"stopped: the driver is gone (its last word at {since}), {planned - len(records)} attempts "
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
        raise typer.Exit(1) from None
    typer.echo(json.dumps(metrics, indent=2, default=str))


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
    """Serve a run's report and attempt pages on 127.0.0.1, rendering an attempt's page when it is missing (the
    files are also readable straight from disk)."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    if not (run_dir / "report.html").is_file():
        _fail(f"{run_dir}: no report.html; run `isobench report {run_dir}` first")
    from isobench_ray.report.attempt_page import render_missing

    class Handler(SimpleHTTPRequestHandler):
        """The run's files; an attempt's page rendered when asked for and missing (a large run's report renders
        only the first pages, report/attempt_page.py)."""

        def do_GET(self):
            parts = self.path.split("?")[0].strip("/").split("/")
            if len(parts) == 3 and parts[0] == "attempts" and parts[2] == "index.html" and ".." not in parts[1]:
                render_missing(run_dir.resolve(), parts[1])
            super().do_GET()

    handler = functools.partial(Handler, directory=str(run_dir.resolve()))
    with ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        typer.echo(f"Serving {run_dir} at http://127.0.0.1:{server.server_address[1]}/report.html (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


# ---------------------------------------------------------------- isobench clean: what dead runs left on this node
