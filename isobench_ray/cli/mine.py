"""`isobench mine`: a repository's history -> candidate performance tasks (isobench_ray/mine.py, docs/mining.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from isobench_ray.cli.app import _fail, app


def _progress():
    """tqdm's bars on stderr where it is installed, else nothing per commit."""
    try:
        from tqdm import tqdm
    except ImportError:
        return lambda items, **_: items
    return lambda items, **kwargs: tqdm(items, file=sys.stderr, leave=False, **kwargs)


def summary_table(looked_at: int, totals: dict[str, int]) -> str:
    """The folder's totals after this run: kept (described), then rejected by reason."""
    rejected = {reason: n for reason, n in totals.items() if reason not in ("kept", "described")}
    width = max([len("rejected"), *(len(r) + 2 for r in rejected)])
    rows = [f"{looked_at} commits looked at in this run; in the folder:",
            f"{'kept':<{width}}  {totals['kept']:>6}" + (f"  ({totals['described']} described)" if totals["described"] else ""),
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
) -> None:
    """Find performance commits in a repository's history and write candidate tasks.

    Without --model: every commit is kept or rejected with a reason (merge, revert, version_bump,
    no_source_change, too_large, not_a_perf_commit, outside_paths). With --model: each candidate gets a
    bottleneck description and a performance test, checked (no line of the fix quoted, the test passes on
    the parent commit), and DIR/tasks.yaml holds them as `script` tasks."""
    import git

    from isobench_ray.mine import MinedFiles, MineOptions, mine
    from isobench_ray.mine_describe import ModelUnavailable

    opts = MineOptions(repo=repo, out=out, since=since, until=until, paths=tuple(paths or ()), limit=limit,
                       max_lines=max_lines, model=model, api_base=api_base, test_timeout_s=test_timeout, python=python)
    try:
        looked_at = mine(opts, _progress())
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        _fail(f"not a git repository: {exc}")
    except ModelUnavailable as exc:
        _fail(f"{exc}\nthe candidates not described yet stay in {out / 'candidates.jsonl'} for the next run", 1)
    except git.GitCommandError as exc:
        _fail(f"git failed: {' '.join(map(str, exc.command))}: {str(exc.stderr).strip()[:500]}", 1)
    files = MinedFiles(out)
    typer.echo(summary_table(looked_at, files.summary()))
    typer.echo(f"candidates: {files.candidates}\nrejected:   {files.rejected}"
               + (f"\ntasks:      {files.tasks}" if files.tasks.exists() else ""))
