"""The real vLLM tier on a CPU, end to end: one task of tasks/vllm-cpu/ through `isobench run` with the agents
human and noop. The human commit (upstream vLLM) must measure faster than its parent (the injected
regression), interval above 1; doing nothing must measure as nothing, interval around 1. Every measured run's
numbers come from the JSON result the benchmark wrote (source: json).

Slow (about half an hour here): `make test-vllm` builds the engine environment, model and repository first and
runs this file; `.ci/run` runs it, `make test` does not. Skips with the reason when the tier is not built.
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


def test_vllm_cpu_human_faster_noop_unchanged(tmp_path):
    if not ENGINE_PYTHON.exists() or not (ROOT / "tasks" / "vllm-cpu" / ".build" / "vllm" / ".git").is_dir():
        pytest.skip("the vllm-cpu tier is not built: run `make test-vllm`")
    env = {**os.environ,
           "HF_HOME": os.environ.get("HF_HOME", str(ROOT / "tasks" / "vllm-cpu" / ".build" / "hf")),
           "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0",
           "ISOBENCH_CACHE_DIR": str(tmp_path / "cache"), "ISOBENCH_WORK_DIR": str(tmp_path / "work"),
           "ISOBENCH_MIN_SAMPLES": "3", "ISOBENCH_NOISE_ARM": os.environ.get("ISOBENCH_NOISE_ARM", "false"),
           "ISOBENCH_CHECK_CORRECTNESS": os.environ.get("ISOBENCH_CHECK_CORRECTNESS", "false")}
    out = tmp_path / "run"
    rounds = os.environ.get("VLLM_ROUNDS", "3")
    cmd = [sys.executable, "-m", "isobench_ray.cli", "run", str(TASKS), "--agents", "human,noop", "--task", TASK,
           "--out", str(out), "--rounds", rounds, "--max-rounds", rounds, "--warmup", "0", "--server-timeout", "180",
           "--num-cpus", "2"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=sys.stdout, stderr=sys.stderr)
    assert proc.returncode == 0
    attempts = _attempts(out)
    assert set(attempts) == {"human", "noop"}, attempts
    for agent, folder in attempts.items():
        measurements = json.loads((folder / "measurements.json").read_text())
        runs = [r for arm in measurements["arms"] for r in arm["runs"] if not r["warmup"]]
        assert runs and all(not arm.get("failure_cause") for arm in measurements["arms"]), (agent, measurements)
        assert all(r["metrics"].get("source") == "json" for r in runs), (agent, runs)
        scores = json.loads((folder / "scores.json").read_text())
        print(f"{TASK} {agent}: {scores['primary_metric']} speedup {scores['speedup_vs_baseline']:.3f} "
              f"interval {scores['speedup_ci']}, human {scores['human_speedup_vs_baseline']:.3f} "
              f"interval {scores['human_speedup_ci']}")
        low, high = scores["human_speedup_ci"]
        assert low > 1, ("the human commit is not faster than its parent", scores)
        low, high = scores["speedup_ci"]
        if agent == "human":
            assert low > 1, scores
        else:
            assert low <= 1 <= high, ("doing nothing measured as a change", scores)
