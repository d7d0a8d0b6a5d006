"""The real vLLM tier on a CPU, end to end: one task of tasks/vllm-cpu/ through `isobench run` with the agent
human (the commit's own diff applied to the parent as the agent's patch), the A/A noise arm and the
correctness check (greedy probe and lm-eval). The human commit (upstream vLLM) must measure faster than its
parent (the injected regression), interval above 1, both as the human arm and as the agent's patch; the
second baseline must measure as the first (doing nothing measures as nothing: the A/A interval around 1).
Every measured run's numbers come from the JSON result the benchmark wrote (source: json).

Slow (about 35 minutes here: 12 benchmark runs of about two minutes each, mostly imports, and the check's
server starts): `make test-vllm` builds the engine environment, model and repository first and runs this
file; `.ci/run` runs it, `make test` does not. Skips with the reason when the tier is not built.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TASKS = ROOT / "tasks" / "vllm-cpu" / "tasks.yaml"
TASK = os.environ.get("VLLM_TASK", "vllm-cpu-free-block-count")
ENGINE_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"  # tasks.yaml's repos.vllm.python

pytestmark = [pytest.mark.slow, pytest.mark.vllm, pytest.mark.timeout(4800)]


def _attempts(out: Path) -> dict[str, Path]:
    found = {}
    for folder in (out / "attempts").iterdir():
        attempt = json.loads((folder / "attempt.json").read_text())
        found[attempt["agent"]] = folder
    return found


def _tier_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """The environment of an `isobench run` on the tier (skips when it is not built), with ISOBENCH_ settings."""
    if not ENGINE_PYTHON.exists() or not (ROOT / "tasks" / "vllm-cpu" / ".build" / "vllm" / ".git").is_dir():
        pytest.skip("the vllm-cpu tier is not built: run `make test-vllm`")
    return {**os.environ,
            "HF_HOME": os.environ.get("HF_HOME", str(ROOT / "tasks" / "vllm-cpu" / ".build" / "hf")),
            "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0",
            "ISOBENCH_CACHE_DIR": str(tmp_path / "cache"), "ISOBENCH_WORK_DIR": str(tmp_path / "work"),
            **{f"ISOBENCH_{k.upper()}": v for k, v in settings.items()}}


def _run(tmp_path: Path, agent: str, env: dict[str, str]) -> tuple[dict, dict, Path]:
    """`isobench run` of the tier's task with one agent, three rounds: (measurements, scores, attempt folder),
    every arm measured from the JSON result its benchmark wrote, and the human commit faster than its parent."""
    out = tmp_path / "run"
    rounds = os.environ.get("VLLM_ROUNDS", "3")
    cmd = [sys.executable, "-m", "isobench_ray.cli", "run", str(TASKS), "--agents", agent, "--task", TASK,
           "--out", str(out), "--rounds", rounds, "--max-rounds", rounds, "--warmup", "0", "--server-timeout", "180",
           "--num-cpus", "2"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=sys.stdout, stderr=sys.stderr)
    assert proc.returncode == 0
    attempts = _attempts(out)
    assert set(attempts) == {agent}, attempts
    folder = attempts[agent]
    measurements = json.loads((folder / "measurements.json").read_text())
    runs = [r for arm in measurements["arms"] for r in arm["runs"] if not r["warmup"]]
    assert runs and all(not arm.get("failure_cause") for arm in measurements["arms"]), (agent, measurements)
    assert all(r["metrics"].get("source") == "json" for r in runs), (agent, runs)
    scores = json.loads((folder / "scores.json").read_text())
    print(f"{TASK} {agent}: {scores['primary_metric']} speedup {scores['speedup_vs_baseline']:.3f} "
          f"interval {scores['speedup_ci']}, human {scores['human_speedup_vs_baseline']:.3f} "
          f"interval {scores['human_speedup_ci']}")
    low, _ = scores["human_speedup_ci"]
    assert low > 1, ("the human commit is not faster than its parent", scores)
    return measurements, scores, folder


# A question set the tiny random model cannot answer (accuracy 0 for every arm), in lm-eval's own task format:
# what is checked is that lm-eval really ran against each arm's server, with the same settings, and that its
# accuracy reached the correctness verdict.
ARITH_TASK = """task: isobench_arith
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 8
  do_sample: false
  temperature: 0.0
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""


def test_vllm_cpu_human_faster_correct_and_nothing_measures_as_nothing(tmp_path):
    """The human commit as the agent: faster (interval above 1); the A/A pair (baseline against a second
    baseline in the same rounds) around 1; and the correctness check on the real engine: every arm's server
    answers the fixed prompts greedily and lm-eval (from the engine's environment, `--include_path` for a
    local task, read from inside each arm's sandbox) scores it; the human commit keeps the baseline's tokens,
    so it is `preserved`. One attempt checks all three: each vLLM run here is two minutes of imports for
    seconds of benchmark, and CI has 90 minutes for everything (a separate noop attempt took 27 of them)."""
    from isobench_ray.schema import Measurements
    from isobench_ray.scoring.hard import intervals

    tasks_dir = tmp_path / "lm_eval_tasks"
    env = {**_tier_env(tmp_path, min_samples="3", noise_arm="true", check_correctness="true", lm_eval_on_cpu="true",
                       lm_eval_tasks='["isobench_arith"]', lm_eval_include_path=str(tasks_dir), lm_eval_limit="6"),
           "HF_DATASETS_OFFLINE": "1"}
    tasks_dir.mkdir()
    data = tasks_dir / "arith.jsonl"
    data.write_text("".join(json.dumps({"question": f"What is {a} plus {b}?", "answer": str(a + b)}) + "\n"
                            for a, b in ((2, 3), (7, 5), (10, 4), (6, 6), (9, 1), (3, 8))))
    (tasks_dir / "isobench_arith.yaml").write_text(ARITH_TASK.format(data=data))
    measurements, scores, folder = _run(tmp_path, "human", env)
    assert scores["speedup_ci"][0] > 1, scores
    aa = intervals(Measurements.model_validate(measurements))["noise"]
    print(f"A/A (baseline2 over baseline): {aa.point:.3f} interval [{aa.low:.3f}, {aa.high:.3f}]; "
          f"noise {scores['noise_pct']:.1f}%; strict class {scores['hard_class_ci']} ({scores['verdict_reason']})")
    assert aa.low <= 1 <= aa.high, ("doing nothing measured as a change", aa)
    arms = [arm for arm in measurements["arms"] if arm["arm"] in ("baseline", "human", "agent")]
    assert len(arms) == 3 and any(arm["arm"] == "baseline2" and arm["runs"] for arm in measurements["arms"])
    for arm in arms:
        assert arm["greedy_outputs"], (arm["arm"], arm.get("greedy_detail"))
        assert arm["accuracy"] is not None, (arm["arm"], arm.get("greedy_detail"))
    print(f"correctness: {scores['correctness']} ({scores['correctness_detail']}); accuracies "
          f"{[(a['arm'], a['accuracy']) for a in arms]}")
    assert scores["correctness"] == "preserved", scores
    for arm in ("baseline", "human", "agent"):  # what lm-eval reported, kept beside its log for a person to read
        reported = json.loads((folder / "bench" / f"{arm}.lm_eval.json").read_text())
        assert reported["results"]["isobench_arith"]["sample_len"] == 6, reported
        assert reported["configs"]["isobench_arith"]["generation_kwargs"]["do_sample"] is False
        assert (folder / "bench" / f"{arm}.lm_eval.log").is_file()


def test_mining_the_tiers_repository_keeps_its_two_fixes(tmp_path):
    """`isobench mine` on the tier's vLLM history (real vLLM source, five commits): the two upstream fixes are
    kept (the tasks' human commits), the commits that inject the regressions are not performance commits, and
    the import of the source is the root."""
    from typer.testing import CliRunner

    from isobench_ray.cli import app
    from isobench_ray.tasks import load_tasks

    repo = ROOT / "tasks" / "vllm-cpu" / ".build" / "vllm"
    _tier_env(tmp_path)  # skips when the tier is not built
    result = CliRunner().invoke(app, ["mine", str(repo), "--out", str(tmp_path / "mined")])
    assert result.exit_code == 0, result.output
    kept = [json.loads(line) for line in (tmp_path / "mined" / "candidates.jsonl").read_text().splitlines()]
    rejected = [json.loads(line) for line in (tmp_path / "mined" / "rejected.jsonl").read_text().splitlines()]
    tasks = load_tasks(TASKS).tasks
    assert {c["commit_hash"] for c in kept} == {t.human_commit for t in tasks}
    assert sorted(r["reason"] for r in rejected) == ["not_a_perf_commit", "not_a_perf_commit", "root"]
    assert {r["commit_hash"] for r in rejected if r["reason"] == "not_a_perf_commit"} == {t.parent_commit for t in tasks}
    assert all(c["functions_changed"] and c["files_changed"][0].startswith("vllm/") for c in kept), kept
