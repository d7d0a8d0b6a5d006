"""The built-in litellm agent, end to end: a real OpenAI-compatible server on 127.0.0.1 scripts the model's
replies (explore, a malformed reply, the fix as a here-document, submit); the agent's commands run in the
session's sandbox; its patch goes through validation and the 3-way benchmark like any other."""

from __future__ import annotations

import json
import shutil
import subprocess

import polars as pl
import pytest
import ray
import yaml
from scripted_llm import ScriptedLLM

from isobench_ray import demo, runner
from isobench_ray.agents import parse_agents
from isobench_ray.agents.litellm import SUBMIT, bash_blocks
from isobench_ray.store import RunStore

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("bwrap") is None, reason="the agent runs code: bubblewrap contains it")]
TASK = "demo-sampler-python-loop"


def test_bash_blocks_follow_mini_swe_agents_convention():
    assert bash_blocks("look:\n```bash\nls -la\n```") == ["ls -la"]
    assert bash_blocks("```bash\nls\n```\nand\n```bash\npwd\n```") == ["ls", "pwd"]
    assert bash_blocks("```python\nprint(1)\n```") == []


def _fixed_sampler() -> str:
    task = next(t for t in yaml.safe_load(demo.TASKS_FILE.read_text())["tasks"] if t["id"] == TASK)
    return subprocess.run(["git", "show", f"{task['human_commit']}:minillm/sampler.py"], cwd=demo.REPO_DIR,
                          check=True, capture_output=True, text=True).stdout


def test_the_litellm_agent_solves_a_demo_task_end_to_end(tmp_path, make_settings):
    demo.build_repo()
    fixed = _fixed_sampler()
    script = [
        "Let me look at the sampler first.\n```bash\nsed -n 1,40p minillm/sampler.py && env | sort\n```",
        "Two ideas:\n```bash\nls\n```\nor\n```bash\npwd\n```",  # two blocks: a format error, and a step
        "I will vectorize the sampling across the batch.\n```bash\ncat > minillm/sampler.py <<'PYEOF'\n" + fixed + "PYEOF\n```",
        "Done.\n```bash\necho " + SUBMIT + "\n```",
    ]

    def reply(messages):
        step = sum(m["role"] == "assistant" for m in messages)
        return 200, script[min(step, len(script) - 1)]

    with ScriptedLLM(reply) as llm:
        agents_file = tmp_path / "agents.yaml"
        agents_file.write_text(yaml.safe_dump({"agents": [
            {"name": "scripted", "kind": "litellm", "model": "openai/scripted-coder", "api_base": llm.url,
             "step_limit": 10, "time_limit_s": 600}]}))
        specs = parse_agents("scripted", agents_file)
        settings = make_settings(rounds=3, max_rounds=3, min_samples=3)
        out = tmp_path / "run"
        try:
            runner.run(str(demo.TASKS_FILE), specs, out, settings, task_ids=[TASK], num_cpus=2, show_progress=False)
        finally:
            ray.shutdown()
        assert len(llm.requests) == 4 and all(r["model"] == "scripted-coder" for r in llm.requests)
        # the prompt: the bottleneck, the benchmark and the layout; never the human diff
        prompt = llm.requests[0]["messages"][1]["content"]
        assert "benchmark_latency.py" in prompt and "minillm/" in prompt and "Vectorize" not in prompt
        assert "exactly one ```bash block; it contained 2" in llm.requests[2]["messages"][-1]["content"]
        # the agent's shell saw none of the harness's environment (no key, no Ray)
        observed = llm.requests[1]["messages"][-1]["content"]
        assert "<returncode>0</returncode>" in observed and "RAY_" not in observed and "OPENAI" not in observed

    store = RunStore(out)
    record = store.records()[0]
    session = record.session
    assert session.exit_status == "submitted" and session.steps == 4 and session.tokens == 4 * 120
    assert session.files_changed == ["minillm/sampler.py"]
    task = next(t for t in yaml.safe_load(demo.TASKS_FILE.read_text())["tasks"] if t["id"] == TASK)
    human = subprocess.run(["git", "diff", task["parent_commit"], task["human_commit"], "--", "minillm/sampler.py"],
                           cwd=demo.REPO_DIR, check=True, capture_output=True, text=True).stdout
    assert [line for line in session.patch.splitlines() if line[:1] in "+-"] == [line for line in human.splitlines() if line[:1] in "+-"]
    trajectory = json.loads((store.attempt_dir(record.attempt.id) / "trajectory.json").read_text())
    assert trajectory["exit_status"] == "submitted" and len(trajectory["messages"]) == 2 + 4 + 4
    assert record.validation.ok and record.status.value == "success"
    row = pl.read_parquet(out / "attempts.parquet").row(0, named=True)
    assert row["speedup_vs_baseline"] >= 1.3 and row["correctness"] == "preserved", row
