"""Stage 6, the report: a run's records -> attempts.parquet, runs.parquet, report.md and report.html.

The frames come from report/frames.py, the tables from report/summary.py, the plots from report/plots.py,
the page from report/html.py; report/hub.py publishes the files as a Hugging Face dataset. report.md and
report.html show the same sections, introduction and file list, all written here once."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from isobench_ray.report import table
from isobench_ray.report.contamination import agent_cutoffs, cutoff_split
from isobench_ray.report.format import for_people
from isobench_ray.report.frames import COLUMNS, agent_models, task_dates
from isobench_ray.report.html import Section
from isobench_ray.report.ranking import health, ranking, ranking_note
from isobench_ray.report.summary import RULE_BASED, agent_usage, summary_by_agent, summary_tables
from isobench_ray.schema import Judgement
from isobench_ray.scoring import compare
from isobench_ray.store import RunStore, write_atomic

INTRO = ("Speedups are medians over interleaved rounds; > 1 is faster than baseline. `agent_vs_human_pct` > 0 means "
         "the agent beat the human commit; `hard_class` applies the ±5% band to the point estimate (the paper's "
         "rule); the `_ci` columns apply the interval rule (docs/measurement.md) and say `inconclusive` where the "
         "interval cannot decide. Status `error` means the task or machine failed, not the agent. Quadrants: Q1 true "
         "success (soft and hard), Q2 good intent / bad execution, Q3 lucky win, Q4 failure; a broken patch "
         "(changed outputs) is never a success, and a patch flagged as gaming the benchmark keeps its numbers but "
         "is no success (hack-adjusted).")
RULE_BASED_NOTE = ("the soft metrics come, at least in part, from the rule-based judge (the two diffs compared by "
                   "rule, no model asked): read them as a rough signal; every soft section says so.")
EMPTY = "Nothing of this kind in this run."  # an empty table, in words
FILES = ("Files: `attempts.parquet` (one row per attempt), `runs.parquet` (one row per benchmark run of every arm: "
         "values, exact commands, server start times), `compare_pairwise.parquet` and `compare_at_k.parquet` (the "
         "agents compared), `report.md` and `report.html` (these tables; the page also "
         "has the plots, offline), `attempts/<id>/` (patch, logs, every stage's JSON).")


def _markdown(df: pl.DataFrame) -> str:
    """A GitHub markdown table, written by Polars (pipes in text escaped so cells stay cells)."""
    df = for_people(df).with_columns(pl.col(pl.Utf8).str.replace_all("|", "\\|", literal=True))
    with pl.Config(tbl_formatting="MARKDOWN", tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True,
                   tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=200, tbl_width_chars=10_000):
        return str(df)


def _sections(df: pl.DataFrame, judgements: list[Judgement],
              comparisons: dict[str, pl.DataFrame]) -> tuple[list[Section], dict[str, pl.DataFrame]]:
    """Every section of report.md and report.html, in order (the same tables in both), and the tables by name:
    the first screen (who did best), the hard metrics, the soft ones, the attempts, the notes."""
    t = summary_tables(df, judgements)
    return [*_first_screen(df, comparisons), *_hard_sections(df, t), *_soft_sections(df, t),
            *_attempt_sections(df, t), *_notes(df)], t


def _first_screen(df: pl.DataFrame, comparisons: dict[str, pl.DataFrame]) -> list[Section]:
    return [
        Section("Who did best", ranking(df), health(df) + " " + ranking_note(df)),
        Section("Agents against each other", comparisons["pairwise"],
                "On the tasks both agents measured: ratio > 1 when agent_a is faster (geometric mean of the per-task "
                "speedup ratios, rollouts averaged first), its 95% interval (bootstrap over tasks), and how often a "
                "resampled suite puts the two in the other order (p_order_flips)."),
        Section("Before and after each agent's knowledge cutoff", comparisons["cutoff"],
                "Hard success (the interval rule, not broken, no hack flag) on tasks whose commit is from the agent's "
                "declared knowledge_cutoff month or earlier (its model may have seen the fix) and on later ones (it "
                "cannot have), with 95% Wilson intervals. Declare it per agent in the agents file "
                "(knowledge_cutoff: YYYY-MM); tasks carry commit_date (isobench mine writes it)."),
        Section("pass@k and opt@k over rollouts", comparisons["at_k"],
                "pass@k: the chance that one of k rollouts passes (the interval rule; an inconclusive rollout is no "
                "pass and is counted apart), unbiased over each task's rollouts; opt@k (GSO): one of k rollouts "
                "measured >= 1.1x over baseline and >= 0.95x the human's speedup, not broken. Intervals: bootstrap "
                "over tasks."),
        Section("Agents: model and work", agent_usage(df),
                "Each agent's model, and what its sessions reported: median steps, tokens and dollars in total "
                "(empty where the agent reports none or its price is unknown)."),
    ]


def _hard_sections(df: pl.DataFrame, t: dict[str, pl.DataFrame]) -> list[Section]:
    return [
        Section("By agent", summary_by_agent(df)),
        Section("Table 1: hard metrics by agent", t["by_agent"],
                "passed: the patch applied and was measured (status success); improvements / regressions: speedup over "
                "baseline > 1 / < 1 among those; errors: the task or machine failed. beats / similar / worse / failed: "
                "the paper's rule (±5% on the point estimate); the _ci columns: the interval rule."),
        Section("Table 2: hard metrics by repository", t["by_repo"], "The same columns, per repository and agent."),
        Section("Table 3: speedup over baseline", t["speedups"],
                "Measured attempts only. 95% intervals: percentile bootstrap (scipy, 2000 resamples) of the mean and "
                "the median; none under two distinct values. geomean: the geometric mean of the speedups."),
        Section("Failure causes by agent", t["failures"]),
        Section("What validation saved", t["validation"],
                "Patches stopped before any benchmark slot time (they do not apply, compile, import or serve), and the "
                "slot time they would have taken: for each, the median 3-way benchmark time of the measured attempts "
                "of its task (of the run where its task has none)."),
    ]


def _soft_sections(df: pl.DataFrame, t: dict[str, pl.DataFrame]) -> list[Section]:
    mean_agreement = df.get_column("judge_agreement").mean()
    judge_errors = df.filter(pl.col("judge_error").is_not_null()).select("attempt_id", "agent", "task_id", "judge_error")
    return [
        Section("Quadrants (soft × hard)", t["quadrants"],
                "Counts and rates over the judged attempts, by the paper's rule (Q1..Q4) and the interval rule "
                "(Q1_ci..Q4_ci, and inconclusive_ci where the interval cannot decide: never folded into Q2 or Q4). Hard "
                "success = Q1 + Q3, true success = Q1. mean_judge_agreement: the share of votes "
                "that agree with the majority.", soft=True),
        Section("Success and correctness", t["success"],
                "Rates over all attempts. A broken patch (it changed what the model generates) is never a success; "
                "broken_but_fast counts those that measured as fast as the human anyway. Hack-adjusted: a patch "
                "flagged as gaming the benchmark keeps its numbers but is no success.", soft=True),
        Section("Judge agreement (Cohen's kappa)", t["kappas"],
                "Bottleneck target, per pair of raters (a judge in one order is one rater) over the attempts both "
                "judged; kappa is empty where undefined. Mean agreement with the majority over judged attempts: "
                + (f"{mean_agreement:.3f}." if mean_agreement is not None else "none judged."), soft=True),
        *([Section("Judge errors", judge_errors,
                   "Attempts whose judging failed: no verdict came back (an earlier verdict, where there was one, "
                   "is kept and shown everywhere else).", soft=True)] if judge_errors.height else []),
        Section("Judges' tokens and cost", t["judge_usage"],
                "Summed from the votes; cost is empty where no vote had a known price.", soft=True),
    ]


ATTEMPT_ROWS = 500  # rows of the attempts table in report.md and report.html; attempts.parquet holds them all


def _first_rows(frame: pl.DataFrame, what: str) -> tuple[pl.DataFrame, str]:
    """A long table's first ATTEMPT_ROWS rows, and the sentence that says so when it was cut."""
    if frame.height <= ATTEMPT_ROWS:
        return frame, ""
    return frame.head(ATTEMPT_ROWS), f" The first {ATTEMPT_ROWS} of {frame.height} {what}"


def _attempt_sections(df: pl.DataFrame, t: dict[str, pl.DataFrame]) -> list[Section]:
    per_attempt = df.select("attempt_id", "task_id", "agent", "status", "failure_cause", "primary_metric",
                            "human_speedup_vs_baseline", "speedup_vs_baseline", "speedup_ci_low", "speedup_ci_high",
                            "agent_vs_human_pct", "hard_class", "hard_class_ci", "verdict_cause", "noise_pct", "rounds",
                            "agent_steps", "agent_tokens", "agent_cost_usd")
    failures = (df.filter(pl.col("failure_cause").is_not_null())
                .group_by("failure_stage", "failure_cause")
                .agg(pl.len().alias("attempts"), pl.col("agent").unique().sort().str.join(", ").alias("agents"))
                .sort("attempts", descending=True))
    per_task, per_task_cut = _first_rows(t["per_task"], "rows: all of them are computed from attempts.parquet.")
    attempts, attempts_cut = _first_rows(per_attempt, "attempts: every one is in attempts.parquet.")
    return [
        Section("Per task: the three arms", per_task,
                "The primary metric of baseline, human and agent, and the speedups with their 95% intervals." + per_task_cut),
        Section("Attempts", attempts, "Each attempt id opens the attempt's page: its patch, "
                "prompt, trajectory, logs, samples and the judges' votes (`attempts/<id>/index.html`; `isobench view "
                "RUN_DIR` serves them, and renders those a large run's report left out)." + attempts_cut),
        Section("Failures by cause", failures),
    ]


def _notes(df: pl.DataFrame) -> list[Section]:
    flagged = df.filter(pl.col("not_discriminative")).get_column("task_id").unique().sort().to_list()
    unsandboxed = df.filter(pl.col("agent_sandbox") == "none").get_column("attempt_id").to_list()
    return [
        Section("Samples flagged", note=(
            f"{int(df['disturbed_samples'].sum() or 0)} samples were disturbed: taken while processes outside the slot "
            f"used its cores, or while a GPU was held down by power or heat ({int(df['throttled_samples'].sum() or 0)} "
            "of them). Kept in measurements.json and runs.parquet, never counted in a verdict, measured again.")),
        Section("Agents that ran unsandboxed", note=(
            ("These attempts ran an agent's code as plain processes on the machine (`--sandbox none`): "
             + ", ".join(unsandboxed)) if unsandboxed else "None: every agent that ran code was contained.")),
        Section("Tasks flagged not_discriminative", note=(
            ("The human commit's speedup lies inside these tasks' own noise (baseline against itself): "
             + ", ".join(flagged)) if flagged else "None: every human speedup stands clear of its task's noise.")),
    ]


def at_k_values(rollouts: int) -> list[int]:
    """The k the report shows pass@k and opt@k at: 1, the powers of two below the fewest rollouts, and that
    number itself (20 rollouts: 1, 2, 4, 8, 16, 20), so the table stays a few rows per agent."""
    top = max(1, rollouts)
    return sorted({top, *(2**i for i in range(top.bit_length()) if 2**i < top)})


def agent_comparisons(df: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """The agents compared with intervals (scoring/compare.py): pairwise on shared tasks, pass@k and opt@k at
    the k of `at_k_values` up to the fewest rollouts any agent has on a task (1 when nobody ran more than
    one), one agent's k together."""
    pairwise = compare.pairwise(df)
    rollouts = df.group_by("agent", "task_id").len().get_column("len")
    ks = at_k_values(int(rollouts.min() or 1) if rollouts.len() else 1)
    at_k = [frame.with_columns(pl.lit(name).alias("measure"))
            for k in ks for name, frame in (("pass@k", compare.pass_at_k(df, k, column="hard_pass_ci")),
                                             ("opt@k", compare.opt_at_k(df, k)))]
    at_k_frame = pl.concat(at_k, how="diagonal_relaxed") if at_k else pl.DataFrame()
    if at_k_frame.width:
        at_k_frame = (at_k_frame.select("measure", *[c for c in at_k_frame.columns if c != "measure"])
                      .sort(pl.col("measure") != "pass@k", "agent", "k"))
    return {"pairwise": pairwise, "at_k": at_k_frame}


def _markdown_section(section: Section, rule_based: bool) -> str:
    label = f" ({RULE_BASED})" if section.soft and rule_based else ""
    parts = [f"## {section.title}{label}"]
    if section.note:
        parts.append(section.note)
    if section.table is not None:
        parts.append(_markdown(section.table) if section.table.height else EMPTY)
    return "\n\n".join(parts)


def write_report(run_dir: str | Path) -> tuple[Path, pl.DataFrame]:
    """attempts.parquet, report.md and report.html in the run directory, from its records and judgements."""
    from isobench_ray.report.attempt_page import write_attempt_pages
    from isobench_ray.report.html import render_html  # matplotlib and jinja2 load only when a report is written
    from isobench_ray.report.plots import all_plots

    store = RunStore(run_dir)
    run_json = store.read_json("run.json")
    df = _attempts(store, agent_models(run_json), task_dates(store.read_json("tasks.json")))
    superseded = set(store.read_json("superseded.json") or [])
    if superseded:  # earlier versions of edited tasks or agents (--accept-changed): apart in every table
        df = df.with_columns(pl.when(pl.col("attempt_id").is_in(sorted(superseded)))
                             .then(pl.col("agent") + " (earlier version)").otherwise(pl.col("agent")).alias("agent"))
    store.root.mkdir(parents=True, exist_ok=True)
    tmp = store.root / ".attempts.parquet.tmp"
    df.write_parquet(tmp)
    tmp.replace(store.root / "attempts.parquet")
    table.sink_runs(store.root, store.finished(), tmp)
    tmp.replace(store.root / "runs.parquet")
    comparisons = {**agent_comparisons(df), "cutoff": cutoff_split(df, agent_cutoffs(run_json))}
    for name, frame in comparisons.items():  # the agents compared, as tables of their own
        frame.write_parquet(tmp)
        tmp.replace(store.root / f"compare_{name}.parquet")
    rule_based = bool(df.get_column("judge_rule_based").fill_null(False).any())
    # the judges' votes (kappas, usage): the judgement files, which only judged runs have
    judgements = [j for a in store.finished() if (j := store.load_stage(a, "judgement"))]
    sections, tables = _sections(df, judgements, comparisons)
    text = "\n\n".join([
        f"# isobench report: {store.root.name}",
        f"{df.height} attempts. {INTRO}",
        *([f"**{RULE_BASED}**: {RULE_BASED_NOTE}"] if rule_based else []),
        *[_markdown_section(s, rule_based) for s in sections],
        FILES,
    ]) + "\n"
    write_atomic(store.root / "report.md", text)
    write_attempt_pages(store, df.get_column("attempt_id").to_list(), agent_models(run_json))
    plots = all_plots(df, tables["quadrants"], rule_based)
    write_atomic(store.root / "report.html", render_html(store.root.name, f"{df.height} attempts. {INTRO}", sections, plots,
                                                                RULE_BASED_NOTE if rule_based else "", FILES))
    return store.root / "report.md", df


def _attempts(store: RunStore, models: dict[str, str], dates: dict[str, str]) -> pl.DataFrame:
    """attempts.parquet's frame from the run's table (report/table.py), what it lacks rebuilt from the records
    first; in plan order, each agent's model and each task's commit date added."""
    finished = store.finished()
    rows = table.read_rows(store.root, finished)
    if rows.height < len(finished) and table.repair(store, rows.get_column("attempt_id").to_list()):
        rows = table.read_rows(store.root, store.finished())
    plan = store.read_json("plan.json") or []
    order = pl.DataFrame({"attempt_id": [a["id"] for a in plan], "_order": range(len(plan))},
                         schema={"attempt_id": pl.Utf8, "_order": pl.Int64})
    frame = (rows.join(order, on="attempt_id", how="left").with_row_index("_written")
             .sort(["_order", "_written"], nulls_last=True).drop("_order", "_written", "stamp"))
    return frame.with_columns(
        pl.col("agent").replace_strict(models, default=None, return_dtype=pl.Utf8).alias("agent_model"),
        pl.col("task_id").replace_strict(dates, default=None, return_dtype=pl.Utf8).alias("commit_date"),
    ).select(COLUMNS)


def print_summary(df: pl.DataFrame) -> None:
    """The terminal's view of the report's first screen: the ranking, the run's health, then the attempts."""
    with pl.Config(tbl_rows=200, tbl_cols=20, tbl_width_chars=200, tbl_hide_dataframe_shape=True,
                   tbl_hide_column_data_types=True, fmt_str_lengths=40):
        print(for_people(ranking(df).select("rank", "agent", "attempts", "true_success_rate", "true_ci_low",
                                            "true_ci_high", "hard_success_rate", "hard_ci_low", "hard_ci_high",
                                            "decisive", "inconclusive", "failed", "broken")))
        print(health(df))
        print(for_people(df.select("task_id", "agent", "status", "failure_cause", "human_speedup_vs_baseline",
                                   "speedup_vs_baseline", "agent_vs_human_pct", "hard_class", "hard_class_ci",
                                   "correctness")))
