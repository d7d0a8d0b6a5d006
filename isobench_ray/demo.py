"""The embedded default: the bundled minillm repository and its tasks, agents and replays."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = ROOT / "tasks" / "demo"
TASKS_FILE = DEMO_DIR / "tasks.yaml"
PREDICTIONS = DEMO_DIR / "replays" / "predictions.jsonl"
REPO_DIR = DEMO_DIR / ".build" / "minillm"


def build_repo() -> dict[str, str]:
    """Build (or verify) the demo repository from tasks/demo/history; deterministic commit hashes."""
    proc = subprocess.run([sys.executable, str(DEMO_DIR / "build_repo.py"), str(REPO_DIR)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"building the demo repository failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def agents_arg() -> str:
    return f"human,noop,replay:{PREDICTIONS}"
