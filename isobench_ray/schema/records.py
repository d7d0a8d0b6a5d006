"""What the stages produce: the session, the validation, the benchmark's runs and arms, the scores and the
record of one attempt; the failure causes and `StageError` that say why an attempt has no comparable number."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any, Literal, get_args

from pydantic import Field, field_validator

from isobench_ray.schema.base import Frozen
from isobench_ray.schema.tasks import Attempt


class FailureCause(StrEnum):
    """Why an attempt did not produce a comparable measurement. Documented in docs/failure-causes.md."""

    no_patch = "no_patch"  # the agent left the tree unchanged
    agent_timeout = "agent_timeout"  # the session hit its time limit
    agent_error = "agent_error"  # the agent process exited non-zero without a patch
    patch_does_not_apply = "patch_does_not_apply"
    # the patch reaches for what measures it or for the host: it makes the benchmark script (or a folder on its
    # path) a symbolic link, which the harness would write through when it copies the baseline's script
    tampering = "tampering"
    compile_error = "compile_error"  # a changed Python file does not compile
    import_error = "import_error"  # the package no longer imports
    server_crash = "server_crash"  # the server exited before it answered, or during the benchmark
    server_timeout = "server_timeout"  # the server never answered its health check in time
    bench_timeout = "bench_timeout"  # the benchmark command ran past its limit
    bench_error = "bench_error"  # the benchmark command exited non-zero
    no_metrics = "no_metrics"  # the benchmark finished but printed no parsable result
    bad_metrics = "bad_metrics"  # it printed a result that is not a number a benchmark can give (nan, inf, 0, < 0)
    patch_too_large = "patch_too_large"  # the agent's changes exceed the patch size limit (kept compressed)
    partial_metrics = "partial_metrics"  # some requests failed: the numbers are not comparable
    baseline_failed = "baseline_failed"  # baseline or human arm failed: the task, not the agent, is broken
    setup_failed = "setup_failed"  # the task's setup command failed in a tree
    repo_missing = "repo_missing"  # the task's repository cannot be cloned
    commit_missing = "commit_missing"  # a commit of the task is not in its repository
    sandbox_unavailable = "sandbox_unavailable"  # the sandbox asked for cannot run on this machine
    no_slot = "no_slot"  # no alive node has the GPUs the task needs on one node (tensor parallelism)
    needs_rebuild = "needs_rebuild"  # an arm changes compiled code its engine environment was not built with
    image_missing = "image_missing"  # the container image of an arm's commit (repo.image) is not on the node
    build_missing = "build_missing"  # no published build of an arm's commit (repo.wheel answers 404)
    infra_error = "infra_error"  # the harness or the machine failed after retries (dead node, full disk, ...)


class StageError(Exception):
    """A deterministic failure of the task or the machine, not of the agent: recorded once as `error` with
    its cause, and not run again on resume (unless --retry-failed). Anything else a stage raises is
    treated as transient and retried."""

    def __init__(self, cause: "FailureCause", detail: str):
        super().__init__(cause, detail)
        self.failure_cause, self.detail = FailureCause(cause), detail  # not `cause`: Ray wraps with that name

    def __str__(self) -> str:
        return f"{self.failure_cause.value}: {self.detail}"


class Status(StrEnum):
    success = "success"
    failed = "failed"  # the agent's patch is at fault
    error = "error"  # the task or the infrastructure is at fault; not counted against the agent


class HardClass(StrEnum):
    beats = "beats"
    similar = "similar"
    worse = "worse"
    inconclusive = "inconclusive"  # the strict class (and the regrade policies) only: not decided, why in VerdictCause
    failed = "failed"


class VerdictCause(StrEnum):
    """Why the strict class is `inconclusive` (Scores.verdict_cause; the sentence is Scores.verdict_reason)."""

    too_noisy = "too_noisy"  # the interval is wider than the margin, or clears the margin but not the task's noise
    straddles = "straddles"  # the interval crosses an edge (±margin or ±noise): more samples may decide it
    disturbed = "disturbed"  # an arm has fewer than min_samples clean samples because runs were disturbed
    few_samples = "few_samples"  # an arm has fewer than min_samples clean samples, none of them disturbed
    # a speedup beyond `implausible_speedup`, or a sample outside physical limits (scoring/plausibility.py):
    # not counted as a success until someone confirms it by hand
    implausible = "implausible"


# ---------------------------------------------------------------- stage outputs


class Session(Frozen):
    """What an agent session left behind: the patch, extracted by the harness with git diff."""

    attempt_id: str
    patch: str = ""
    files_changed: list[str] = Field(default_factory=list)
    exit_status: str = ""  # agent's own words: "done", "timeout", "exit 3", ...
    sandbox: str = ""  # where the agent ran: "bwrap", "local" (a replay: no code of the agent's), "none" (its code, uncontained)
    duration_s: float = 0.0  # the whole stage: trees, agent, patch extraction
    agent_s: float = 0.0  # the agent alone
    steps: int = 0  # model replies, where the agent reports them
    tokens: int = 0
    cost_usd: float | None = None  # None: not reported, or a model without a known price
    failure_cause: FailureCause | None = None
    detail: str = ""  # human-readable reason or log tail


class Check(Frozen):
    name: str  # apply | benchmark_script | compile | import | server_start
    ok: bool
    detail: str = ""
    duration_s: float = 0.0


class Validation(Frozen):
    attempt_id: str
    checks: list[Check] = Field(default_factory=list)
    failure_cause: FailureCause | None = None
    apply_method: str | None = None  # which `git apply` variant worked
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failure_cause is None


# The arms of a 3-way benchmark: the parent, the human commit, the parent with the agent's patch, and
# baseline2, a second baseline in the same rounds (the A/A noise arm). Every other module takes them from here.
Arm = Literal["baseline", "human", "agent", "baseline2"]
NOISE_ARM: Arm = "baseline2"
ALL_ARMS: tuple[Arm, ...] = get_args(Arm)
ARMS: tuple[Arm, ...] = tuple(a for a in ALL_ARMS if a != NOISE_ARM)  # the three that make a verdict

# Configuration echoes that are infinite by design (`--request-rate inf`): not measurements.
MAY_BE_INFINITE = frozenset({"request_rate", "max_concurrency"})


class Run(Frozen):
    """One execution of the benchmark command for one arm."""

    arm: Arm
    round: int
    warmup: bool = False
    metrics: dict[str, Any] = Field(default_factory=dict)
    duration_s: float = 0.0
    failure_cause: FailureCause | None = None
    detail: str = ""
    # load average, CPU clock and, where NVML is, GPU clocks, temperature, power and throttle reasons
    telemetry: dict[str, dict[str, Any]] = Field(default_factory=dict)  # {"start": {...}, "end": {...}}
    outside_load: float = 0.0  # share of the slot's core time used by processes outside the slot
    disturbed: bool = False  # outside load above the limit: kept for the record, not a sample; measured again
    # exactly what ran (ports and result flags included), and how long this round's server took to answer
    command: str = ""
    server_command: str = ""
    server_start_s: float | None = None  # launch to ready, ports retried included; None: no server

    @property
    def is_sample(self) -> bool:
        """Counted in the statistics: measured (not a warm-up), undisturbed, and not failed."""
        return not self.warmup and not self.disturbed and self.failure_cause is None

    @field_validator("metrics")
    @classmethod
    def _finite(cls, metrics: dict[str, Any]) -> dict[str, Any]:
        for key, value in metrics.items():
            if isinstance(value, float) and not math.isfinite(value) and key not in MAY_BE_INFINITE:
                raise ValueError(f"metric {key} = {value} is not finite")
        return metrics


class ArmResult(Frozen):
    arm: Arm
    commit: str
    command: str  # exactly what ran, after templating
    server_command: str | None = None
    server_cpus: tuple[int, ...] = ()  # cores the server was pinned to (() = not pinned)
    client_cpus: tuple[int, ...] = ()  # cores the benchmark command was pinned to
    runs: list[Run] = Field(default_factory=list)
    failure_cause: FailureCause | None = None
    detail: str = ""
    # correctness: greedy completions of fixed prompts (None: not checked), and lm-eval accuracy where run
    greedy_outputs: list[str] | None = None
    greedy_detail: str = ""  # why there are none
    accuracy: float | None = None
    # a script task's own equivalence check (engines/scripts.py): the arm's results match the baseline's
    # stored reference (None: not checked)
    equivalent: bool | None = None

    def samples(self, metric: str) -> list[float]:
        return [float(r.metrics[metric]) for r in self.runs if r.is_sample and metric in r.metrics]


class Measurements(Frozen):
    attempt_id: str
    slot: str  # which benchmark slot measured it (node/GPU), all arms on the same one
    primary_metric: str
    higher_is_better: bool  # the metric's direction, from the engine's table
    arms: list[ArmResult]
    order: list[list[str]] = Field(default_factory=list)  # arm order per round
    stop_reason: str = ""  # why the rounds stopped: interval narrow enough, max rounds, an arm failed
    duration_s: float = 0.0  # the whole stage
    prepare_s: float = 0.0  # trees, patch and setup before the first round
    server_s: float = 0.0  # starting and stopping servers, all arms and rounds
    slot_s: float = 0.0  # the wall time the slot was held by this attempt's benchmark stage

    def arm(self, name: str) -> ArmResult | None:
        return next((a for a in self.arms if a.arm == name), None)


class Scores(Frozen):
    attempt_id: str
    primary_metric: str
    higher_is_better: bool
    baseline_value: float | None = None
    human_value: float | None = None
    agent_value: float | None = None
    speedup_vs_baseline: float | None = None  # agent over baseline, >1 is faster
    human_speedup_vs_baseline: float | None = None
    agent_vs_human_pct: float | None = None  # positive: agent better than human
    hard_class: HardClass = HardClass.failed  # the paper's rule: point estimate against ±5%
    # 95% bootstrap intervals (ratio of medians), the task's own noise and the strict class
    speedup_ci: tuple[float, float] | None = None
    human_speedup_ci: tuple[float, float] | None = None
    agent_vs_human_ci_pct: tuple[float, float] | None = None
    noise_pct: float | None = None  # baseline against itself (baseline2), in percent
    # what beats/worse must clear: max(margin_pct, noise_pct) (records made before verdicts.py: max(5%, 2 x noise))
    band_pct: float = 5.0
    hard_class_ci: HardClass = HardClass.failed
    # the strict class (scoring/verdicts.py): similar only with the whole interval inside ±margin_pct, which noise
    # never widens; inconclusive says why (cause, and a sentence: "too_noisy: the A/A interval is ±31%, ...")
    margin_pct: float = 5.0
    verdict_cause: VerdictCause | None = None
    verdict_reason: str = ""
    interval_method: Literal["independent", "paired"] = "independent"  # how the intervals were estimated (stats.py)
    not_discriminative: bool = False  # the human speedup lies inside the task's own noise
    rounds: int = 0
    # faster by changing what the model generates is broken (scoring/correctness.py)
    correctness: Literal["preserved", "broken", "unchecked"] = "unchecked"
    correctness_detail: str = ""
    # why the numbers are not believed ("" when they are; scoring/plausibility.py): the strict class is then
    # `inconclusive` (cause `implausible`) and no success count takes the attempt; hard_class stays the paper's
    implausible: str = ""


class AttemptRecord(Frozen):
    """Everything known about one attempt; one row of attempts.parquet."""

    attempt: Attempt
    status: Status
    failure_cause: FailureCause | None = None
    failure_stage: str | None = None
    detail: str = ""
    session: Session | None = None
    validation: Validation | None = None
    measurements: Measurements | None = None
    scores: Scores | None = None

