"""Publish a run's tables as a Hugging Face dataset: attempts.parquet, report.md, report.html and a dataset card.

One commit through the hub's HTTP API (create the repo if needed, then commit the four files), so what a
reader sees is always one run's complete set. The card's YAML points the dataset viewer at attempts.parquet.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

FILES = ("attempts.parquet", "report.md", "report.html")


def dataset_card(run_dir: Path, df: pl.DataFrame) -> str:
    """README.md: YAML front matter (configs -> attempts.parquet) and a short description of the run."""
    from huggingface_hub import DatasetCard, DatasetCardData

    data = DatasetCardData(
        pretty_name=f"isobench run {run_dir.name}",
        tags=["isobench", "llm-inference", "benchmark", "coding-agents"],
        size_categories=["n<1K"] if df.height < 1000 else ["1K<n<10K"],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "attempts.parquet"}]}],
    )
    agents = ", ".join(df.get_column("agent").unique().sort().to_list()) or "none"
    tasks = df.get_column("task_id").n_unique()
    rule_based = bool(df.get_column("judge_rule_based").fill_null(False).any())
    body = (
        f"# isobench run `{run_dir.name}`\n\n"
        f"{df.height} attempts of {tasks} tasks by these agents: {agents}. One row per attempt in `attempts.parquet`: "
        "the three arms' primary metric (baseline, human commit, agent), the speedups with their 95% intervals, "
        "the hard class under the paper's ±5% rule and the interval rule, correctness, the judges' soft metrics and "
        "the quadrant (Q1 true success, Q2 good intent, Q3 lucky win, Q4 failure).\n\n"
        + ("**rule-based judge**: some or all soft metrics come from the rule-based judge (no model asked).\n\n"
           if rule_based else "")
        + "`report.md` holds the summary tables; `report.html` the same tables and plots, one offline page.\n"
    )
    return str(DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}"))


def push_to_hub(run_dir: str | Path, repo_id: str, *, endpoint: str | None = None, token: str | None = None,
                private: bool = False) -> str:
    """Upload the run's tables as the dataset `repo_id` (created if missing); returns the commit's URL.
    The report is written first when one of its files is missing."""
    from huggingface_hub import CommitOperationAdd, HfApi

    from isobench_ray.report.write import write_report

    run_dir = Path(run_dir)
    if not all((run_dir / name).exists() for name in FILES):
        write_report(run_dir)
    df = pl.read_parquet(run_dir / "attempts.parquet")
    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    operations = [CommitOperationAdd("README.md", dataset_card(run_dir, df).encode())]
    operations += [CommitOperationAdd(name, run_dir / name) for name in FILES]
    info = api.create_commit(repo_id, operations, repo_type="dataset",
                             commit_message=f"isobench run {run_dir.name}: {df.height} attempts")
    return info.commit_url


MINED_FILES = ("candidates.jsonl", "rejected.jsonl", "tasks.yaml")


def push_mined(out: str | Path, repo_id: str, *, endpoint: str | None = None, token: str | None = None,
               private: bool = False) -> str:
    """Upload an `isobench mine` folder as the dataset `repo_id`: candidates.jsonl (the released dataset's
    fields, the viewer's split), rejected.jsonl and tasks.yaml where they exist, and a card; the commit's URL."""
    from huggingface_hub import CommitOperationAdd, DatasetCard, DatasetCardData, HfApi

    out = Path(out)
    present = [name for name in MINED_FILES if (out / name).exists()]
    kept = sum(1 for line in (out / "candidates.jsonl").read_text().splitlines() if line.strip()) \
        if "candidates.jsonl" in present else 0
    data = DatasetCardData(pretty_name=f"isobench mined tasks {out.name}", tags=["isobench", "performance", "mined"],
                           configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "candidates.jsonl"}]}])
    body = (f"# Tasks mined by `isobench mine` ({out.name})\n\n{kept} performance commits kept, one JSON object a line "
            "in `candidates.jsonl` in the fields of ISO-Bench's released dataset (`commit_hash`, `parent_commit`, "
            "`commit_date`, `files_changed`, `functions_changed`, `stats`, `diff_text`, ...), with the model-written "
            "`description` and `test_script` where described and `verified` where measured; `rejected.jsonl` gives "
            "every other commit looked at with its reason; `tasks.yaml` runs under `isobench run`.\n")
    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    operations = [CommitOperationAdd("README.md", str(DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}")).encode())]
    operations += [CommitOperationAdd(name, out / name) for name in present]
    info = api.create_commit(repo_id, operations, repo_type="dataset", commit_message=f"isobench mine: {kept} candidates")
    return info.commit_url
