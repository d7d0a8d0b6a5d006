"""Run settings: one model, read from `ISOBENCH_*` environment variables (pydantic-settings) and options,
written to results/<run>/run.json so a run can be resumed and read back.

The measurement settings (`MEASUREMENT_FIELDS`) are part of a run's identity: numbers measured with
three rounds and numbers measured with five do not mix, so resuming a run with other values stops.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The one home of two defaults other modules also need (the docker image builder, the status command).
DEFAULT_CACHE_DIR = str(Path.home() / ".cache" / "isobench")  # git mirrors, images, environments: across runs
BASE_IMAGE = "isobench-base:bookworm"  # the image every container starts from unless the task names one

MEASUREMENT_FIELDS = ("rounds", "max_rounds", "ci_target_pct", "confidence", "noise_arm", "warmup_runs",
                      "runs_per_round", "hard_band_pct", "pin_cores", "pin_min_cores", "min_samples",
                      "check_correctness", "greedy_max_tokens", "lm_eval_tasks", "lm_eval_include_path",
                      "lm_eval_on_cpu", "lm_eval_limit", "lm_eval_batch_size", "lm_eval_seed", "accuracy_drop_max")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ISOBENCH_", frozen=True, extra="forbid")

    # where things live
    cache_dir: str = Field(DEFAULT_CACHE_DIR,
                           validation_alias=AliasChoices("cache_dir", "ISOBENCH_CACHE", "ISOBENCH_CACHE_DIR"))
    work_dir: str = Field(str(Path(tempfile.gettempdir()) / "isobench-work"),  # per-stage scratch, removed after
                          validation_alias=AliasChoices("work_dir", "ISOBENCH_WORK", "ISOBENCH_WORK_DIR"))
    run_dir: str = ""  # set by the runner; hidden from agents like the cache and the other attempts' trees
    # local: agents that run code go into bubblewrap, and the run refuses them where it is missing;
    # none: they run as plain processes (explicitly asked for; the report marks those attempts)
    # docker: every session, validation and benchmark arm in its own container (sandbox/docker.py)
    sandbox: Literal["local", "none", "docker"] = "local"
    # the docker sandbox (docs/docker.md): the engine (None: DOCKER_HOST, else the local socket of the machine
    # that runs the stage), the image every container starts from, /dev/shm (inference servers need it), a
    # hard limit after which the engine kills and removes a container, the network that network=True gets,
    # host folders every container sees at the same path (read-only; "path:rw" writable: model caches), and
    # the user commands run as (None: the harness's own uid:gid, so files in the bind mounts stay its own)
    docker_host: str | None = None
    docker_image: str = BASE_IMAGE
    docker_shm_size: str = "8g"
    docker_time_limit_s: float = Field(86400.0, gt=0)
    docker_network: str = "host"
    docker_mounts: tuple[str, ...] = ()
    docker_user: str | None = None
    docker_min_free_gb: float = Field(50.0, ge=0)  # under this free space, unused images go, least recently used first
    # before any session, the driver asks whether each image the plan needs can be had (environments.missing_images);
    # off where images are put on the nodes by hand under names a reachable registry does not know
    check_images_at_plan: bool = True
    envs_min_free_gb: float = Field(50.0, ge=0)  # the same rule for per-commit engine environments (repo.wheel)
    isolate_agents: bool = True  # contain agent sessions (also those that run no code, where it is possible)
    # host variables that validation and benchmark commands may see: model caches, and the thread counts Ray
    # gives its workers (one per CPU asked for), which every arm must share; agents get none of them
    env_passthrough: tuple[str, ...] = ("HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                                        "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_DEVICE_ORDER")
    host: str = "127.0.0.1"
    # time limits
    server_start_timeout_s: float = Field(600.0, gt=0)
    import_timeout_s: float = Field(300.0, gt=0)
    setup_timeout_s: float = Field(3600.0, gt=0)
    bench_timeout_s: float | None = Field(None, gt=0)  # one benchmark run; default: the task's own timeout_s
    max_patch_bytes: int = Field(20_000_000, gt=0)  # larger changes are patch_too_large (kept compressed)
    validate_server: bool = True  # start the agent's server once during validation (cheap on CPU; off for GPU-only engines)
    # measurement (see docs/measurement.md)
    rounds: int = Field(3, ge=2)  # interleaved rounds at least
    max_rounds: int = Field(8, ge=2)  # ... and at most, while the intervals are wider than the target
    ci_target_pct: float = Field(2.0, gt=0)  # stop when both speedup intervals' half-widths are under this
    confidence: float = Field(0.95, gt=0, lt=1)
    noise_arm: bool = True  # a second baseline arm in the same rounds: the task's own noise floor
    warmup_runs: int | None = Field(None, ge=0)  # discarded runs after each server start; None: the engine's default
    pin_cores: bool = True  # server and client on disjoint cores of the slot, thread pools sized to them ...
    pin_min_cores: int = Field(4, ge=1)  # ... where the slot has this many (on 2 shared vCPUs pinning measured noisier)
    # on a GPU node, cores kept for agent sessions and validation (their processes and containers are pinned
    # there); the benchmark slots share the rest. 0: slots share every core
    host_cores: int = Field(2, ge=0)
    min_samples: int = Field(5, ge=2)  # per arm before the strict class says anything (docs/measurement.md)
    gpu_rest_mb: float = Field(1024.0, gt=0)
    # a sample during which processes outside the slot used more than this share of its cores' time is
    # flagged and measured again (once)
    outside_load_max: float = Field(0.25, gt=0, le=1)  # memory a GPU may hold at rest before an arm; more means dirty
    runs_per_round: int = Field(1, ge=1)  # measured runs per server start
    hard_band_pct: float = Field(5.0, ge=0)
    # correctness, after the rounds on the same slot (scoring/correctness.py): greedy completions of fixed
    # prompts everywhere; an lm-eval accuracy check where the slot has a GPU (or lm_eval_on_cpu)
    check_correctness: bool = True
    greedy_max_tokens: int = Field(32, ge=1)
    lm_eval_tasks: tuple[str, ...] = ("gsm8k",)
    # a folder of lm-eval task YAMLs (lm-eval's --include_path): the user's own tasks, or local data offline
    lm_eval_include_path: str | None = None
    lm_eval_on_cpu: bool = False  # CPU slots skip it: hours of generation on a CPU
    lm_eval_limit: int | None = Field(250, ge=1)  # examples per task (None: all); the same for every arm
    lm_eval_batch_size: int = Field(16, ge=1)
    lm_eval_seed: int = 1234
    accuracy_drop_max: float = Field(0.05, ge=0)
    # soft metrics: litellm model strings (none: the rule-based judge); not part of a run's identity, since
    # judging reads finished measurements and `isobench judge` adds judges later
    judges: tuple[str, ...] = ()
    judge_api_base: str | None = None  # an OpenAI-compatible endpoint (else litellm's defaults, OPENAI_API_BASE)
    judge_concurrency: int = Field(4, ge=1)  # requests in flight per model
    judge_attempts: int = Field(3, ge=1)  # replies that do not fit are asked again this often, then judge_error
    judge_transient_attempts: int = Field(8, ge=1)  # rate limits and connection errors, with exponential backoff
    judge_backoff_max_s: float = Field(60.0, gt=0)
    judge_timeout_s: float = Field(300.0, gt=0)
    judge_diff_chars: int = Field(24_000, ge=1000)  # each patch in a prompt: head and tail kept
    hack_samples: int = Field(3, ge=0)  # judge samples on the hack question per model (majority); 0: diff scan only
    # scheduling
    agent_concurrency: int = Field(4, ge=1)  # agent sessions at once (model endpoints have rate limits)

    @model_validator(mode="after")
    def _rounds_in_order(self) -> "Settings":
        if self.max_rounds < self.rounds:
            raise ValueError(f"max_rounds ({self.max_rounds}) is below rounds ({self.rounds})")
        return self

    @property
    def min_rounds(self) -> int:
        """Rounds before the adaptive rounds may stop: `rounds`, and enough for `min_samples` per arm."""
        return max(self.rounds, -(-self.min_samples // self.runs_per_round))

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir)

    @property
    def work_path(self) -> Path:
        return Path(self.work_dir)

    def measurement(self) -> dict[str, Any]:
        return self.model_dump(mode="json", include=set(MEASUREMENT_FIELDS))  # as run.json holds them (lists, not tuples)
