"""Run settings: one pydantic model, written to results/<run>/run.json so a run can be resumed and read back."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pydantic import BaseModel, Field


def _default_cache() -> str:
    return os.environ.get("ISOBENCH_CACHE", str(Path.home() / ".cache" / "isobench"))


def _default_work() -> str:
    return os.environ.get("ISOBENCH_WORK", str(Path(tempfile.gettempdir()) / "isobench-work"))


class Settings(BaseModel):
    cache_dir: str = Field(default_factory=_default_cache)  # git mirrors, shared across runs
    work_dir: str = Field(default_factory=_default_work)  # per-attempt scratch trees, removed after each stage
    isolate_agents: bool = True  # bubblewrap around agent sessions where it is installed
    host: str = "127.0.0.1"
    server_start_timeout_s: float = 600.0
    validate_server: bool = True  # start the agent's server once during validation (cheap on CPU; off for GPU-only engines)
    import_timeout_s: float = 300.0
    rounds: int = Field(3, ge=2)  # interleaved rounds at least (see docs/measurement.md)
    max_rounds: int = Field(8, ge=2)  # ... and at most, while the intervals are wider than the target
    ci_target_pct: float = 2.0  # stop when both speedup intervals' half-widths are under this
    confidence: float = 0.95
    noise_arm: bool = True  # a second baseline arm in the same rounds: the task's own noise floor
    warmup_runs: int = Field(0, ge=0)  # discarded runs after each server start
    runs_per_round: int = Field(1, ge=1)  # measured runs per server start
    hard_band_pct: float = 5.0
    agent_concurrency: int = Field(4, ge=1)  # agent sessions at once (model endpoints have rate limits)

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir)

    @property
    def work_path(self) -> Path:
        return Path(self.work_dir)
