"""Run settings, in groups: where things live, sandboxes, Docker, time limits, measurement, correctness,
lm-eval, judges, scheduling. Read from `ISOBENCH_*` environment variables (pydantic-settings) and options,
written to results/<run>/run.json so a run can be resumed and read back.

Each setting has one public, flat name: its group's prefix and its own (`docker_image`, `lm_eval_limit`,
`rounds`). That name is its environment variable (`ISOBENCH_DOCKER_IMAGE`), its key in run.json (older
runs wrote the same flat keys) and what `Settings(**flat)` and `Settings.replace` take; code reads the
groups (`settings.docker.image`). The measurement identity is derived from the groups that change what a
number means (measurement, correctness, lm-eval): numbers measured with three rounds and numbers measured
with five do not mix, so resuming a run with other values stops.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, create_model, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The one home of two defaults other modules also need (the docker image builder, the status command).
DEFAULT_CACHE_DIR = str(Path.home() / ".cache" / "isobench")  # git mirrors, images, environments: across runs
BASE_IMAGE = "isobench-base:bookworm"  # the image every container starts from unless the task names one


class Group(BaseModel):
    """One group of settings. `prefix` + a field's name is its flat name, unless `flat_names` says otherwise."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    prefix: ClassVar[str] = ""
    flat_names: ClassVar[dict[str, str]] = {}

    @classmethod
    def flat_name(cls, field: str) -> str:
        return cls.flat_names.get(field, cls.prefix + field)


class PathSettings(Group):
    cache_dir: str = Field(DEFAULT_CACHE_DIR, description="Git mirrors, images and environments, shared across runs.")
    work_dir: str = Field(str(Path(tempfile.gettempdir()) / "isobench-work"),
                          description="Per-stage scratch trees, removed after each stage.")
    # set by the runner; hidden from agents like the cache and the other attempts' trees
    run_dir: str = Field("", description="The run directory (set by the runner).")

    @property
    def cache(self) -> Path:
        return Path(self.cache_dir)

    @property
    def work(self) -> Path:
        return Path(self.work_dir)


class SandboxSettings(Group):
    flat_names: ClassVar[dict[str, str]] = {"kind": "sandbox", "readable": "sandbox_readable",
                                            "pids_limit": "sandbox_pids_limit", "tmp_mb": "sandbox_tmp_mb"}
    kind: Literal["local", "none", "docker"] = Field(
        "local", description="local: agents that run code are contained (bubblewrap) or refused; docker: every "
        "session, validation and benchmark arm in its own container (docs/docker.md); none: agents run as plain "
        "processes (marked in the report).")
    isolate_agents: bool = Field(True, description="Contain agent sessions (also those that run no code, where possible).")
    isolate_arms: bool = Field(True, description="Run validation and each benchmark arm in a sandbox of its own "
                               "(bubblewrap where installed; Docker always), the other arms' trees out of sight.")
    # model caches, and the thread counts Ray gives its workers (one per CPU asked for), which every arm must
    # share; agents get none of them
    env_passthrough: tuple[str, ...] = Field(
        ("HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
         "CUDA_DEVICE_ORDER"), description="Host variables that validation and benchmark commands may see.")
    host: str = Field("127.0.0.1", description="The address servers listen on.")
    # the bubblewrap jail (docs/security.md): what it may read beyond the toolchain, and its limits
    readable: tuple[str, ...] = Field((), description="Host folders a bubblewrap sandbox may read besides the "
                                      "toolchain, interpreters and PATH (agent CLIs installed elsewhere, model caches).")
    pids_limit: int = Field(4096, ge=16, description="Processes and threads a bubblewrap sandbox may hold at once.")
    tmp_mb: int = Field(2048, ge=16, description="Size of a bubblewrap sandbox's /tmp and /dev/shm (tmpfs, MB each).")


class DockerSettings(Group):
    prefix: ClassVar[str] = "docker_"
    flat_names: ClassVar[dict[str, str]] = {"check_images_at_plan": "check_images_at_plan",
                                            "envs_min_free_gb": "envs_min_free_gb"}
    host: str | None = Field(None, description="The Docker engine (None: DOCKER_HOST, else the node's local socket).")
    image: str = Field(BASE_IMAGE, description="The image every container starts from.")
    shm_size: str = Field("8g", description="/dev/shm of each container (inference servers need it).")
    time_limit_s: float = Field(86400.0, gt=0, description="The hard cap of a container's life: after this the engine "
                                "kills and removes it, whoever keeps it alive.")
    ttl_margin_s: float = Field(600.0, gt=0, description="A container outlives the process that made it (a killed "
                                "driver or worker) by at most this.")
    network: str = Field("isobench", description="The network a sandbox with network=True gets: a bridge of the "
                         "harness's own with the host cut off ('host' gives the host's network: the harness's ports too).")
    pids_limit: int = Field(4096, ge=16, description="Processes and threads a container may hold at once.")
    memory: str | None = Field(None, description="Memory of each container, Docker's units ('32g'; None: three "
                               "quarters of the node's memory).")
    tmp_size: str = Field("2g", description="Size of each container's /tmp (a tmpfs, counted in its memory).")
    cap_add: tuple[str, ...] = Field((), description="Capabilities given back to containers (all are dropped; the "
                                     "sandbox itself needs none).")
    mounts: tuple[str, ...] = Field((), description="Host folders every container sees at the same path (read-only; "
                                    "'path:rw' writable: model caches).")
    user: str | None = Field(None, description="The user commands run as (None: the harness's own uid:gid).")
    min_free_gb: float = Field(50.0, ge=0, description="Under this free space, unused images go, least recently used first.")
    # off where images are put on the nodes by hand under names a reachable registry does not know
    check_images_at_plan: bool = Field(True, description="Before any session, ask whether each image the plan needs "
                                       "can be had.")
    envs_min_free_gb: float = Field(50.0, ge=0, description="The same eviction rule for per-commit engine "
                                    "environments (repo.wheel).")


class LimitSettings(Group):
    server_start_timeout_s: float = Field(600.0, gt=0, description="Seconds a server may take to answer.")
    import_timeout_s: float = Field(300.0, gt=0, description="Seconds the import check may take.")
    setup_timeout_s: float = Field(3600.0, gt=0, description="Seconds a repository's setup command may take.")
    bench_timeout_s: float | None = Field(None, gt=0, description="Seconds one benchmark run may take (None: the "
                                          "task's timeout_s).")
    max_patch_bytes: int = Field(20_000_000, gt=0, description="Larger changes are patch_too_large (kept compressed).")
    validate_server: bool = Field(True, description="Validation starts the server of a serving task once.")


class MeasurementSettings(Group):
    """What a number means (docs/measurement.md): part of a run's identity."""

    rounds: int = Field(3, ge=2, description="Interleaved rounds at least.")
    max_rounds: int = Field(8, ge=2, description="Rounds at most, while the strict verdict is undecided.")
    # rounds stop when the strict verdict is decided, or cannot be within max_rounds, or at this budget
    slot_budget_min: float | None = Field(120.0, gt=0, description="Slot minutes one attempt's rounds may take "
                                          "(None: no budget; max_rounds still holds).")
    confidence: float = Field(0.95, gt=0, lt=1, description="Of every interval.")
    noise_arm: bool = Field(True, description="A second baseline arm in the same rounds: the task's own noise floor.")
    warmup_runs: int | None = Field(None, ge=0, description="Discarded runs after each server start (None: the engine's default).")
    pin_cores: bool = Field(True, description="Server and client on disjoint cores of the slot, thread pools sized to them ...")
    pin_min_cores: int = Field(4, ge=1, description="... where the slot has this many (on 2 shared vCPUs pinning measured noisier).")
    min_samples: int = Field(5, ge=2, description="Clean samples per arm before the strict class says anything.")
    runs_per_round: int = Field(1, ge=1, description="Measured runs per server start and round.")
    hard_band_pct: float = Field(5.0, ge=0, description="The equivalence margin of the hard classes (percent).")
    implausible_speedup: float = Field(50.0, gt=1, description="A speedup beyond this (over the baseline or the "
                                       "human) is implausible: flagged, inconclusive, no success until confirmed by hand.")
    interval_method: Literal["paired", "independent"] = Field(
        "paired", description="paired: per-round ratios of arms measured in the same round (narrower at the same "
        "false-verdict rate, docs/measurement.md); independent: each arm's samples resampled alone.")

    @model_validator(mode="after")
    def _rounds_in_order(self) -> "MeasurementSettings":
        if self.max_rounds < self.rounds:
            raise ValueError(f"max_rounds ({self.max_rounds}) is below rounds ({self.rounds})")
        return self

    @property
    def min_rounds(self) -> int:
        """Rounds before the adaptive rounds may stop: `rounds`, and enough for `min_samples` per arm."""
        return max(self.rounds, -(-self.min_samples // self.runs_per_round))


class SlotSettings(Group):
    """The machine side of a benchmark slot: not part of what a number means."""

    # on a GPU node, cores kept for agent sessions and validation (their processes and containers are pinned
    # there); the benchmark slots share the rest. 0: slots share every core
    host_cores: int = Field(2, ge=0, description="Cores per GPU node kept for sessions and validation, never a slot's.")
    gpu_rest_mb: float = Field(1024.0, gt=0, description="Memory a GPU may hold at rest before an arm; more means dirty.")
    outside_load_max: float = Field(0.25, gt=0, le=1, description="A sample during which processes outside the slot "
                                    "used more than this share of its cores' time is disturbed: never counted.")


class CorrectnessSettings(Group):
    """After the rounds, on the same slot (scoring/correctness.py): part of a run's identity."""

    flat_names: ClassVar[dict[str, str]] = {"enabled": "check_correctness"}
    enabled: bool = Field(True, description="Greedy completions of fixed prompts from every arm's server.")
    greedy_max_tokens: int = Field(32, ge=1, description="Tokens per greedy completion.")
    accuracy_drop_max: float = Field(0.05, ge=0, description="An lm-eval accuracy this far under the baseline's is broken.")


class LmEvalSettings(Group):
    """lm-evaluation-harness against each arm's server, where the slot has a GPU: part of a run's identity."""

    prefix: ClassVar[str] = "lm_eval_"
    tasks: tuple[str, ...] = Field(("gsm8k",), description="lm-eval tasks.")
    include_path: str | None = Field(None, description="A folder of lm-eval task YAMLs (--include_path): the user's "
                                     "own tasks, or local data offline.")
    on_cpu: bool = Field(False, description="Also on CPU slots (hours of generation on a CPU).")
    limit: int | None = Field(250, ge=1, description="Examples per task (None: all); the same for every arm.")
    batch_size: int = Field(16, ge=1, description="lm-eval's batch size.")
    seed: int = Field(1234, description="lm-eval's seed.")


class JudgeSettings(Group):
    """Soft metrics: not part of a run's identity (judging reads finished measurements; judges come later)."""

    prefix: ClassVar[str] = "judge_"
    flat_names: ClassVar[dict[str, str]] = {"models": "judges", "hack_samples": "hack_samples"}
    models: tuple[str, ...] = Field((), description="litellm model strings (none: the rule-based judge).")
    api_base: str | None = Field(None, description="An OpenAI-compatible endpoint (else litellm's defaults).")
    concurrency: int = Field(4, ge=1, description="Requests in flight per model.")
    attempts: int = Field(3, ge=1, description="Replies that do not fit are asked again this often, then judge_error.")
    transient_attempts: int = Field(8, ge=1, description="Rate limits and connection errors, with exponential backoff.")
    backoff_max_s: float = Field(60.0, gt=0, description="The longest wait between two tries.")
    timeout_s: float = Field(300.0, gt=0, description="One request.")
    diff_chars: int = Field(24_000, ge=1000, description="Each patch in a prompt: head and tail kept.")
    hack_samples: int = Field(3, ge=0, description="Judge samples on the hack question per model (0: diff scan only).")


class ScheduleSettings(Group):
    agent_concurrency: int = Field(4, ge=1, description="Agent sessions at once (model endpoints have rate limits).")


GROUPS: dict[str, type[Group]] = {
    "paths": PathSettings, "sandbox": SandboxSettings, "docker": DockerSettings, "limits": LimitSettings,
    "measurement": MeasurementSettings, "slots": SlotSettings, "correctness": CorrectnessSettings,
    "lm_eval": LmEvalSettings, "judges": JudgeSettings, "schedule": ScheduleSettings,
}
IDENTITY_GROUPS = ("measurement", "correctness", "lm_eval")  # what a number means
# flat name -> (group, field)
FLAT: dict[str, tuple[str, str]] = {g.flat_name(f): (name, f) for name, g in GROUPS.items() for f in g.model_fields}
# older names still read from the environment
_ENV_ALIASES = {"cache_dir": ("ISOBENCH_CACHE",), "work_dir": ("ISOBENCH_WORK",)}


def setting_help(flat: str) -> str:
    """A setting's description and default, for the command line's help (written once, here)."""
    group, field = FLAT[flat]
    info = GROUPS[group].model_fields[field]
    default = info.default
    shown = ", ".join(default) if isinstance(default, tuple) else default
    return f"{info.description} (default {shown}; ISOBENCH_{flat.upper()})"


def _env_model() -> type[BaseSettings]:
    """A flat pydantic-settings model of every setting, all optional: what the environment gives, and nothing
    else (keyword arguments and defaults are the groups' business)."""
    fields: dict[str, Any] = {}
    for flat, (group, field) in FLAT.items():
        kind = GROUPS[group].model_fields[field].annotation
        names = (f"ISOBENCH_{flat.upper()}", *_ENV_ALIASES.get(flat, ()))
        fields[flat] = (kind | None, Field(None, validation_alias=AliasChoices(*names)))
    base = type("_EnvBase", (BaseSettings,), {"model_config": SettingsConfigDict(extra="ignore")})
    return create_model("SettingsFromEnv", __base__=base, **fields)


class Settings(BaseModel):
    """Every setting of a run, by group; made from flat names (keyword arguments over `ISOBENCH_*` variables)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    paths: PathSettings = PathSettings()
    sandbox: SandboxSettings = SandboxSettings()
    docker: DockerSettings = DockerSettings()
    limits: LimitSettings = LimitSettings()
    measurement: MeasurementSettings = MeasurementSettings()
    slots: SlotSettings = SlotSettings()
    correctness: CorrectnessSettings = CorrectnessSettings()
    lm_eval: LmEvalSettings = LmEvalSettings()
    judges: JudgeSettings = JudgeSettings()
    schedule: ScheduleSettings = ScheduleSettings()

    def __init__(self, **flat: Any):
        """Settings(rounds=5, docker_image=...): flat names, over the `ISOBENCH_*` environment."""
        unknown = sorted(set(flat) - set(FLAT))
        if unknown:
            raise ValueError(f"unknown setting(s) {unknown}; known: {sorted(FLAT)}")
        env = {k: v for k, v in _ENV().model_dump().items() if v is not None}
        values: dict[str, dict[str, Any]] = {}
        for name, value in {**env, **flat}.items():
            group, field = FLAT[name]
            values.setdefault(group, {})[field] = value
        super().__init__(**values)

    def flat(self) -> dict[str, Any]:
        """Every setting under its flat name, as run.json holds them (lists, not tuples)."""
        dumped = self.model_dump(mode="json")
        return {flat: dumped[group][field] for flat, (group, field) in FLAT.items()}

    def replace(self, **flat: Any) -> "Settings":
        """A copy with some settings changed, by flat name (validated again)."""
        return Settings(**{**self.flat(), **flat})

    def identity(self) -> dict[str, Any]:
        """The settings that change what a number means, by flat name (run.json's `measurement`)."""
        return {k: v for k, v in self.flat().items() if FLAT[k][0] in IDENTITY_GROUPS}


_ENV = _env_model()
