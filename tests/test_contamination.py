"""The contamination split: an agent that declares its model's knowledge cutoff gets its rates before and after it."""

import json

import polars as pl
import pytest
from test_attempt_pages import _record

from isobench_ray.agents import parse_agents
from isobench_ray.report.contamination import cutoff_split, side
from isobench_ray.report.write import write_report
from isobench_ray.store import RunStore


def test_tasks_split_by_the_month_of_their_commit():
    assert side("2024-06-30T23:00:00+00:00", "2024-06") == "before"  # the cutoff's own month: may have been seen
    assert side("2024-07-01T00:00:00+00:00", "2024-06") == "after" and side(None, "2024-06") == "undated"
    df = pl.DataFrame({"agent": ["a"] * 5 + ["b"], "commit_date": ["2023-01-01", "2023-05-01", "2025-01-01", "2025-02-01", None,
                                                                    "2025-01-01"],
                       "hacked": [False, False, False, True, False, False], "correctness": ["preserved"] * 5 + ["broken"],
                       "hard_pass_ci": [True, True, False, True, True, True]})
    split = {(r["agent"], r["tasks"]): r for r in cutoff_split(df, {"a": "2024-06"}).iter_rows(named=True)}
    assert set(split) == {("a", "before the cutoff"), ("a", "after the cutoff"), ("a", "no commit date")}
    before, after = split[("a", "before the cutoff")], split[("a", "after the cutoff")]
    assert (before["attempts"], before["hard_success"], after["attempts"], after["hard_success"]) == (2, 2, 2, 0)
    assert 0 < after["hard_ci_high"] < 1 and before["hard_ci_low"] > 0  # Wilson intervals, sound at 0 and n


def _agents_file(tmp_path, cutoff: str):
    path = tmp_path / f"agents-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(json.dumps({"agents": [{"name": "mine", "kind": "noop", "knowledge_cutoff": cutoff}]}))
    return path


def test_an_agents_file_cutoff_reaches_the_report(tmp_path):
    (spec,) = parse_agents("mine", _agents_file(tmp_path, "2024-05"))
    assert spec.knowledge_cutoff == "2024-05"
    with pytest.raises(Exception, match="knowledge_cutoff"):
        parse_agents("mine", _agents_file(tmp_path, "May 2024"))
    store = RunStore(tmp_path / "run")
    record = _record(store)
    store.write_json("run.json", {"agents": [spec.model_dump()]})
    store.write_json("tasks.json", [{"id": record.attempt.task_id, "commit_date": "2024-06-05T12:00:00+00:00"}])
    _, df = write_report(tmp_path / "run")
    assert df.get_column("commit_date").to_list() == ["2024-06-05T12:00:00+00:00"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## Before and after each agent's knowledge cutoff" in report and "after the cutoff" in report
    assert pl.read_parquet(tmp_path / "run" / "compare_cutoff.parquet").get_column("tasks").to_list() == [
        "before the cutoff", "after the cutoff"]


def test_probe_memory_scores_a_recalled_diff_high_and_a_guess_low(tmp_path, monkeypatch):
    """`isobench probe-memory`: a model that writes back the sampler commit's own diff from its subject scores
    line_recall 1; one that guesses scores near 0; a rerun asks nothing again. The model is a scripted server."""
    from scripted_llm import ScriptedLLM
    from typer.testing import CliRunner

    from isobench_ray import demo
    from isobench_ray.cli import app
    from isobench_ray.probe_memory import overlap
    from isobench_ray.tasks import load_tasks
    from isobench_ray.workspace import diff_between, mirror

    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    monkeypatch.setenv("ISOBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    demo.build_repo()
    sampler = next(t for t in load_tasks(demo.TASKS_FILE).tasks if t.id == "demo-sampler-python-loop")
    diff = diff_between(mirror(sampler.repo.url, tmp_path / "cache"), sampler.parent_commit, sampler.human_commit)

    def reply(messages):
        asked = messages[-1]["content"]
        if "Vectorize the sampler" in asked:
            return 200, f"I recall it well:\n```diff\n{diff}```\n"
        return 200, "```diff\n+def faster():\n+    return cache.get(key)  # guessed\n```"

    out = tmp_path / "probe.jsonl"
    with ScriptedLLM(reply) as llm:
        args = ["probe-memory", str(demo.TASKS_FILE), "--model", "openai/scripted", "--api-base", llm.url, "--out", str(out)]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        asked = len(llm.requests)
        again = CliRunner().invoke(app, args)
        assert again.exit_code == 0 and len(llm.requests) == asked  # resumed: nothing asked twice
    rows = {r["task_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert asked == len(rows) == 5
    recalled = rows["demo-sampler-python-loop"]
    assert recalled["line_recall"] == 1.0 and recalled["similarity"] > 0.9 and recalled["subject"].startswith("[Perf] Vectorize")
    guessed = rows["demo-free-block-scan"]
    assert guessed["line_recall"] == 0.0 and guessed["similarity"] < 0.3
    assert "mean line_recall" in result.output
    assert overlap("+    x = 1\n", "anything") == (0.0, 0.0, 0)  # nothing of 8 characters to recall: no score
