"""Soft metrics: the verdict's shape, the rule-based judge, the hack scan, quadrants, and a real litellm
judge against a scripted OpenAI-compatible server on 127.0.0.1 that rate-limits and answers garbage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scripted_llm import ScriptedLLM

from isobench_ray import demo
from isobench_ray.judges.base import HACK_SHAPE, parse_reply
from isobench_ray.judges.rule_based import compare
from isobench_ray.runner import JudgingFailed, PlanError
from isobench_ray.runner import judge as judge_run
from isobench_ray.schema import (
    Attempt,
    AttemptRecord,
    HackVerdict,
    HardClass,
    NoopSpec,
    PatchVerdict,
    Scores,
    Session,
    Status,
    Vote,
)
from isobench_ray.scoring.hacks import scan
from isobench_ray.scoring.soft import hard_pass, kappas, quadrant, soft_pass, summarize
from isobench_ray.store import RunStore
from isobench_ray.tasks import load_tasks

VERDICT = {
    "task_analysis": {"domain": "compute", "complexity": "medium", "description": "d"},
    "bottleneck_target": {"category": "same_target", "human_target": "h", "agent_target": "a", "discussion": ""},
    "optimization_techniques": {"human_techniques": ["algorithmic"], "agent_techniques": ["caching"],
                                "technique_overlap": False, "discussion": ""},
    "approach_comparison": {"category": "similar_approach", "discussion": ""},
    "speedup_likelihood": {"category": "likely_similar", "discussion": ""},
    "failure_mode": {"category": "not_applicable", "discussion": ""},
    "observations": {"key_differences": [], "agent_strengths": [], "agent_weaknesses": [], "benchmark_needed": ""},
    "library_failure": {"responsible_libraries": [], "failure_reason": ""},
}


def test_reply_bare_fenced_or_refused():
    bare = parse_reply(json.dumps(VERDICT), PatchVerdict)
    fenced = parse_reply("Here is my verdict:\n```json\n" + json.dumps(VERDICT) + "\n```\nThanks.", PatchVerdict)
    assert bare == fenced and bare.approach_comparison.category == "similar_approach"
    assert bare.optimization_techniques.agent_techniques == ["other"]  # outside the original's list
    with pytest.raises(ValueError, match="does not fit PatchVerdict"):
        parse_reply('{"bottleneck_target": {"category": "somewhere"}}', PatchVerdict)
    with pytest.raises(ValueError):
        parse_reply("I cannot judge this.", PatchVerdict)


def test_the_originals_published_verdict_reads(upstream_samples):
    text = (upstream_samples / "soft_metrics_sglang_017_2ed68d7a" / "patch_quality.json").read_text()
    verdict = parse_reply(text, PatchVerdict)
    assert verdict.bottleneck_target.category == "same_target"
    assert verdict.approach_comparison.category == "ineffective"
    assert verdict.failure_mode.category == "complexity_avoidance"


def _diff(path: str, added: list[str], context: str = "def f(n):") -> str:
    body = "\n".join("+" + line for line in added)
    return (f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n@@ -1,1 +1,{1 + len(added)} @@\n"
            f" {context}\n{body}\n")


def test_rule_based_judge_reads_shared_files_functions_and_lines():
    human = _diff("engine/sampler.py", ["    return fast(n)"])
    assert compare(human, human).bottleneck_target.category == "same_target"
    assert compare(human, human).approach_comparison.category == "same_approach"
    other_function = _diff("engine/sampler.py", ["    return 1"], context="def g(n):")
    assert compare(human, other_function).bottleneck_target.category == "related_target"
    elsewhere = _diff("engine/server.py", ["    return 1"])
    verdict = compare(human, elsewhere)
    assert verdict.bottleneck_target.category == "different_target"
    assert verdict.failure_mode.category == "localization_failure"
    assert "rule-based" in verdict.bottleneck_target.discussion


def test_hack_scan_catches_the_mechanical_cases():
    command = "python benchmarks/benchmark_latency.py --batch-size 32 --input-len 64"
    assert scan(_diff("benchmarks/benchmark_latency.py", ["    pass"]), command) == ["edits_benchmark"]
    assert scan(_diff("engine/x.py", ["_RESULT_CACHE = {}"]), command) == ["module_cache"]
    special = _diff("engine/x.py", ["    if n == 64:", "        return PRECOMPUTED"])
    assert scan(special, command) == ["special_cases_inputs"]
    assert scan(_diff("engine/x.py", ["    if n == 7:", "        return 0", "    cache = {}"]), command) == []


def test_quadrants_need_both_axes_and_broken_is_never_a_pass():
    fast = Scores(attempt_id="a", primary_metric="m", higher_is_better=True, hard_class=HardClass.beats,
                  hard_class_ci=HardClass.inconclusive, correctness="preserved")
    assert hard_pass(fast) and not hard_pass(fast, strict=True)
    assert not hard_pass(fast.model_copy(update={"correctness": "broken"}))
    judged = summarize("a", [Vote(judge="m1", verdict=PatchVerdict.model_validate(VERDICT))], False, [])
    assert soft_pass(judged) is True and quadrant(True, True) == "Q1" and quadrant(True, False) == "Q2"
    assert quadrant(False, True) == "Q3" and quadrant(False, False) == "Q4" and quadrant(None, True) is None


def test_majority_agreement_hack_votes_and_kappa():
    other = {**VERDICT, "bottleneck_target": {**VERDICT["bottleneck_target"], "category": "different_target"}}
    same, diff = PatchVerdict.model_validate(VERDICT), PatchVerdict.model_validate(other)
    yes = HackVerdict.model_validate({**json.loads(HACK_SHAPE), "caches_across_runs": True})
    no = HackVerdict.model_validate(json.loads(HACK_SHAPE))
    j = summarize("a", [Vote(judge="m1", order="human_first", verdict=same, hack=[yes, yes, no]),
                        Vote(judge="m1", order="agent_first", verdict=same),
                        Vote(judge="m2", order="human_first", verdict=diff)], False, ["module_cache"])
    assert j.bottleneck_target == "same_target" and j.agreement == pytest.approx(2 / 3)
    assert j.hack_flags == ["caches_across_runs", "module_cache"]
    assert summarize("b", [Vote(judge="m1", error="429")], False, []).judge_error.startswith("m1")
    # two raters that always agree over two labels: kappa 1; an order flip on one of two attempts lowers it
    k = summarize("b", [Vote(judge="m1", order="human_first", verdict=diff),
                        Vote(judge="m1", order="agent_first", verdict=same)], False, [])
    pairs = {(a, b): kappa for a, b, _, kappa in kappas([j, k])}
    assert pairs[("m1 [agent_first]", "m1 [human_first]")] == pytest.approx(0.0)


@pytest.fixture(scope="module")
def demo_tasks():
    demo.build_repo()
    return {t.id: t for t in load_tasks(str(demo.TASKS_FILE)).tasks}


def _finished_run(root: Path, tasks: dict) -> dict[str, str]:
    """A run directory as the driver leaves it: records with patches, tasks.json. Returns attempt id -> task id."""
    store = RunStore(root)
    patches = [json.loads(line) for line in demo.PREDICTIONS.read_text().splitlines()]
    ids = {}
    for i, pred in enumerate(patches[:4]):
        task = tasks[pred["instance_id"]]
        attempt = Attempt.make(task, NoopSpec(name="replay"), i, {"patch": i})
        record = AttemptRecord(attempt=attempt, status=Status.success,
                               session=Session(attempt_id=attempt.id, patch=pred["model_patch"]),
                               scores=Scores(attempt_id=attempt.id, primary_metric="m", higher_is_better=True,
                                             hard_class=HardClass.similar, correctness="preserved"))
        store.save_stage(attempt.id, "record", record)
        ids[attempt.id] = task.id
    noop = Attempt.make(next(iter(tasks.values())), NoopSpec(name="noop"), 0, {})
    store.save_stage(noop.id, "record", AttemptRecord(attempt=noop, status=Status.failed,
                                                      session=Session(attempt_id=noop.id)))
    store.write_json("tasks.json", [t.model_dump() for t in tasks.values()])
    return ids


@pytest.mark.slow  # backoff and retries against a scripted model server, two judge runs
def test_a_judged_run_survives_garbage_and_rate_limits_and_never_asks_twice(tmp_path, demo_tasks, monkeypatch, make_settings):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-scripted")
    ids = _finished_run(tmp_path / "run", demo_tasks)
    seen = {"n": 0}

    def reply(messages):
        seen["n"] += 1
        prompt = messages[-1]["content"]
        if seen["n"] <= 3:
            return 429, "rate limited, slow down"
        if "demo-sampler-python-loop" in prompt or "[sampler]" in prompt:
            return 200, "Looks good to me!"  # never the shape asked for
        if "games the benchmark" in prompt:
            return 200, HACK_SHAPE
        return 200, "```json\n" + json.dumps(VERDICT) + "\n```"

    settings = make_settings(judges=("openai/scripted-judge",), judge_backoff_max_s=0.05,
                             hack_samples=1, judge_attempts=2)
    records_before = {p: p.read_bytes() for p in (tmp_path / "run").glob("attempts/*/record.json")}
    with ScriptedLLM(reply) as llm:
        settings = settings.replace(**{"judge_api_base": llm.url})
        report, sent = judge_run(tmp_path / "run", settings)
        assert sent == 3  # judged with a verdict: the noop has no patch, one attempt's replies never fit
        store = RunStore(tmp_path / "run")
        for aid, task_id in ids.items():
            j = store.load_stage(aid, "judgement")
            if task_id == "demo-sampler-python-loop":
                assert j.judge_error and "does not fit PatchVerdict" in j.judge_error and j.bottleneck_target is None
            else:
                assert j.judge_error is None and j.bottleneck_target == "same_target" and j.agreement == 1.0
                assert [v.order for v in j.votes] == ["human_first", "agent_first"]
                assert all(v.tokens > 0 and not v.cached for v in j.votes)
        assert {p: p.read_bytes() for p in records_before} == records_before  # nothing measured is touched
        first = len(llm.requests)
        with pytest.raises(JudgingFailed, match="does not fit PatchVerdict"):  # every attempt sent failed: exit non-zero
            judge_run(tmp_path / "run", settings)
        again = [r for r in llm.requests[first:] if "Reply with the word OK" not in r["messages"][-1]["content"]]
        # only the attempt whose judge failed is asked again
        assert again and all("demo-sampler-python-loop" in r["messages"][-1]["content"] for r in again)
    import polars as pl
    df = pl.read_parquet(tmp_path / "run" / "attempts.parquet")
    judged = df.filter(pl.col("judge_error").is_null() & pl.col("bottleneck_target").is_not_null())
    assert judged.height == 3 and set(judged["quadrant"]) == {"Q1"} and not judged["judge_rule_based"].any()
    assert df.filter(pl.col("agent") == "noop")["quadrant"].to_list() == [None]


def test_without_a_model_the_rule_based_judge_answers_and_says_so(tmp_path, demo_tasks, make_settings):
    _finished_run(tmp_path / "run", demo_tasks)
    _, sent = judge_run(tmp_path / "run", make_settings())
    assert sent == 4
    import polars as pl
    df = pl.read_parquet(tmp_path / "run" / "attempts.parquet").filter(pl.col("judges").is_not_null())
    assert set(df["judges"]) == {"rule-based"} and df["judge_rule_based"].all()
    assert set(df["bottleneck_target"]) <= {"same_target", "related_target", "different_target"}


@pytest.mark.slow  # scripted servers that refuse, hang up and answer garbage
def test_judges_that_cannot_answer_never_replace_a_verdict(tmp_path, demo_tasks, monkeypatch, make_settings):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    _finished_run(tmp_path / "run", demo_tasks)
    judge_run(tmp_path / "run", make_settings())  # rule-based verdicts first
    before = {p: p.read_bytes() for p in (tmp_path / "run").glob("attempts/*/judgement.json")}
    assert len(before) == 4

    # no key, no endpoint: refused before anything is sent, one line per cause, nothing rewritten
    with pytest.raises(PlanError, match="(?s)nothing was sent.*openai/gpt-x: .*Missing credentials"):
        judge_run(tmp_path / "run", make_settings(judges=("openai/gpt-x",), judge_transient_attempts=1), again=True)
    # a local server that refuses every request (503): the same
    with ScriptedLLM(lambda messages: (503, "down for maintenance")) as llm:
        with pytest.raises(PlanError, match="nothing was sent"):
            judge_run(tmp_path / "run", make_settings(judges=("openai/local",), judge_api_base=llm.url,
                                                      judge_transient_attempts=1, judge_backoff_max_s=0.01), again=True)
    # a local server without a key that answers, but never in the shape asked: every attempt fails, exit non-zero
    with ScriptedLLM(lambda messages: (200, "Looks good to me!")) as llm:
        assert llm.url  # no OPENAI_API_KEY: the placeholder key lets the request go out
        with pytest.raises(JudgingFailed, match="4 attempt\\(s\\): .*does not fit PatchVerdict"):
            judge_run(tmp_path / "run", make_settings(judges=("openai/local",), judge_api_base=llm.url, hack_samples=0,
                                                      judge_attempts=1), again=True)
        assert len(llm.requests) > 1  # the key check and the attempts were sent
    assert {p: p.read_bytes() for p in before} == before  # every verdict kept
