"""`isobench mine`: a repository's history -> candidate performance tasks (isobench_ray/mine.py, docs/mining.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from isobench_ray.cli.app import _fail, _opt, _settings, app


def _progress():
    """tqdm's bars on stderr where it is installed, else nothing per commit."""
    try:
        from tqdm import tqdm
    except ImportError:
        return lambda items, **_: items
    return lambda items, **kwargs: tqdm(items, file=sys.stderr, leave=False, **kwargs)


def summary_table(looked_at: int, totals: dict[str, int]) -> str:
    """The folder's totals after this run: kept (described), then rejected by reason."""
    rejected = {reason: n for reason, n in totals.items() if reason not in ("kept", "described", "verified")}
    width = max([len("rejected"), *(len(r) + 2 for r in rejected)])
    said = [f"{totals[k]} {k}" for k in ("described", "verified") if totals[k]]
    rows = [f"{looked_at} commits looked at in this run; in the folder:",
            f"{'kept':<{width}}  {totals['kept']:>6}" + (f"  ({', '.join(said)})" if said else ""),
            f"{'rejected':<{width}}  {sum(rejected.values()):>6}"]
    rows += [f"{'  ' + reason:<{width}}  {n:>6}" for reason, n in rejected.items()]
    return "\n".join(rows)


@app.command("mine")
def mine_cmd(
    repo: Path = typer.Argument(..., help="A git repository (its working copy or bare directory); HEAD's history is mined."),
    out: Path = typer.Option(..., "--out", help="The output folder: candidates.jsonl, rejected.jsonl, tasks.yaml. "
                                                 "An existing one is resumed: its commits are not looked at again."),
    since: Optional[str] = typer.Option(None, "--since", help="Only commits from this date on (YYYY-MM-DD, committer date)."),
    until: Optional[str] = typer.Option(None, "--until", help="Only commits up to this date (YYYY-MM-DD, committer date)."),
    paths: Optional[list[str]] = typer.Option(None, "--paths", help="Only commits changing a file that matches one of "
                                                                    "these globs (repeatable; `*` crosses folders)."),
    model: Optional[str] = typer.Option(None, "--model", help="A litellm model string: describe each candidate and write "
                                                              "its performance test (none: find only)."),
    api_base: Optional[str] = typer.Option(None, "--api-base", help="The model's OpenAI-compatible endpoint (litellm's "
                                                                    "api_base); without a key in the environment a "
                                                                    "placeholder is sent."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Look at most at this many new commits."),
    max_lines: int = typer.Option(2000, "--max-lines", min=1, help="Commits editing more lines are rejected as too_large."),
    test_timeout: float = typer.Option(600.0, "--test-timeout", min=1, help="Seconds each run of a generated test may "
                                                                             "take on the parent commit."),
    python: str = typer.Option(sys.executable, "--python", help="The interpreter that runs the generated tests; it needs "
                                                                "the mined repository's dependencies."),
    verify: bool = typer.Option(False, "--verify", help="Measure each described candidate as a task (the commit against "
                                "its parent, with the A/A arm, an `isobench run` into DIR/verify/) and keep only those "
                                "the strict rule finds faster beyond the noise."),
    rounds: Optional[int] = _opt("rounds"),
    max_rounds: Optional[int] = _opt("max_rounds"),
    sandbox: Optional[str] = _opt("sandbox"),
    address: Optional[str] = typer.Option(None, help="--verify on this Ray cluster; default RAY_ADDRESS or a new local one."),
    num_cpus: Optional[int] = typer.Option(None, help="--verify: logical CPUs of a new local cluster."),
    num_gpus: Optional[int] = typer.Option(None, help="--verify: logical GPUs of a new local cluster."),
    push_to_hub: Optional[str] = typer.Option(None, "--push-to-hub", metavar="REPO", help="Then upload candidates.jsonl, "
                                              "rejected.jsonl and tasks.yaml as this Hugging Face dataset (HF_TOKEN)."),
    private: bool = typer.Option(False, "--private", help="--push-to-hub: create the dataset private."),
) -> None:
    """Find performance commits in a repository's history and write candidate tasks.

    Without --model: every commit is kept or rejected with a reason (merge, revert, version_bump,
    no_source_change, too_large, not_a_perf_commit, outside_paths). With --model: each candidate gets a
    bottleneck description and a performance test, checked (no line of the fix quoted, the test passes on
    the parent commit), and DIR/tasks.yaml holds them as `script` tasks. With --verify: each is measured, and
    kept only when the commit is faster than its parent beyond the noise (no_gain, too_noisy,
    test_fails_on_commit, not_equivalent otherwise)."""
    from isobench_ray.mine import MinedFiles, MineOptions

    looked_at = _mine(MineOptions(repo=repo, out=out, since=since, until=until, paths=tuple(paths or ()), limit=limit,
                                  max_lines=max_lines, model=model, api_base=api_base, test_timeout_s=test_timeout,
                                  python=python))
    files = MinedFiles(out)
    if verify:
        _verify(repo, files, _settings(rounds=rounds, max_rounds=max_rounds, sandbox=sandbox), python,
                address=address, num_cpus=num_cpus, num_gpus=num_gpus)
    typer.echo(summary_table(looked_at, files.summary()))
    typer.echo(f"candidates: {files.candidates}\nrejected:   {files.rejected}"
               + (f"\ntasks:      {files.tasks}" if files.tasks.exists() else ""))
    if push_to_hub:
        _push(out, push_to_hub, private)


def _mine(opts) -> int:
    import git

    from isobench_ray.mine import mine
    from isobench_ray.mine_describe import ModelUnavailable

    try:
        return mine(opts, _progress())
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        _fail(f"not a git repository: {exc}")
    except ModelUnavailable as exc:
        _fail(f"{exc}\nthe candidates not described yet stay in {opts.out / 'candidates.jsonl'} for the next run", 1)
    except git.GitCommandError as exc:
        _fail(f"git failed: {' '.join(map(str, exc.command))}: {str(exc.stderr).strip()[:500]}", 1)
    raise AssertionError("unreachable")  # _fail exits


def _push(out: Path, repo_id: str, private: bool) -> None:
    from isobench_ray.report.hub import push_mined

    try:
        typer.echo(f"pushed:     {push_mined(out, repo_id, private=private)}")
    except Exception as exc:  # the hub's HTTP errors, a missing token, no network: one line, the files kept
        _fail(f"the files are written, but pushing them to the hub as {repo_id} failed: {type(exc).__name__}: "
              f"{str(exc).splitlines()[0][:300] if str(exc) else ''}", 1)


def _verify(repo: Path, files, settings, python: str, **run_options) -> None:
    import git

    from isobench_ray.mine_describe import engine_python
    from isobench_ray.mine_verify import verify_pending
    from isobench_ray.runner import PlanError
    from isobench_ray.tasks import TaskFileError

    untested = sum(c.test_script is None for c in files.read_candidates())
    if untested:
        typer.echo(f"{untested} candidates have no test yet, so --verify skips them: describe them with --model", err=True)
    try:
        verify_pending(git.Repo(repo), files, settings, engine_python(python), **run_options)
    except (PlanError, TaskFileError) as exc:
        _fail(f"--verify: {exc}\nwhat was measured is kept in {files.out / 'verify'}; rerun to resume", 1)
    except KeyboardInterrupt:
        _fail(f"\ninterrupted: what was measured is kept in {files.out / 'verify'}; rerun to resume", code=130)


@app.command("probe-memory")
def probe_memory_cmd(
    tasks_file: str = typer.Argument(..., metavar="TASKS", help="Task file (.yaml, upstream .json/.jsonl) or hf:NAME."),
    model: str = typer.Option(..., "--model", help="A litellm model string: the model asked to recall each human diff."),
    out: Path = typer.Option(..., "--out", help="A JSONL file, one probe per line; an existing one is resumed (its "
                                                 "tasks are not asked again for this model)."),
    api_base: Optional[str] = typer.Option(None, "--api-base", help="The model's OpenAI-compatible endpoint."),
    task: Optional[list[str]] = typer.Option(None, "--task", help="Only these task ids (repeatable)."),
) -> None:
    """Ask a model to reproduce each task's human diff from the commit subject alone, and record how much of the
    diff's added lines it wrote back (line_recall) and how alike the two are (similarity): a memorisation
    probe, beside the report's before/after-cutoff split."""
    import json

    from isobench_ray.config import Settings
    from isobench_ray.probe_memory import probe
    from isobench_ray.runner import PlanError, load_checked
    from isobench_ray.tasks import TaskFileError

    try:
        tasks = [t for t in load_checked(tasks_file).tasks if not task or t.id in task]
    except (PlanError, TaskFileError) as exc:
        _fail(str(exc))
    done = set()
    if out.exists():
        done = {row["task_id"] for line in out.read_text().splitlines() if line.strip()
                if (row := json.loads(line)).get("model") == model}
    todo = [t for t in tasks if t.id not in done]
    out.parent.mkdir(parents=True, exist_ok=True)
    progress = _progress()
    try:
        with out.open("a") as stream:
            for found in progress(probe(todo, model, Path(Settings().paths.cache), api_base=api_base),
                                  total=len(todo), desc="probe", unit="task"):
                stream.write(found.model_dump_json() + "\n")
                stream.flush()
    except Exception as exc:  # after llm_client's backoff: the endpoint or the key
        _fail(f"{model}: {type(exc).__name__}: {str(exc)[:300]}\nthe tasks probed so far are kept in {out}", 1)
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["model"] == model and r["task_id"] in {t.id for t in tasks}]
    for row in rows:
        typer.echo(f"{row['task_id']:<40} line_recall {row['line_recall']:.2f}  similarity {row['similarity']:.2f}")
    if rows:
        typer.echo(f"{model}: mean line_recall {sum(r['line_recall'] for r in rows) / len(rows):.2f} over {len(rows)} tasks")
