"""The pipeline's boundary types: Task -> Attempt -> Session/Patch -> Validation -> Measurements -> Scores.

Every stage takes and returns these pydantic models; the results store writes them as JSON and the
report reads them back. They carry data only: no I/O, no Ray.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, field_validator

BenchKind = Literal["serving", "latency", "throughput"]


class FailureCause(StrEnum):
    """Why an attempt did not produce a comparable measurement. Documented in docs/failure-causes.md."""

    no_patch = "no_patch"  # the agent left the tree unchanged
    agent_timeout = "agent_timeout"  # the session hit its time limit
    agent_error = "agent_error"  # the agent process exited non-zero without a patch
    patch_does_not_apply = "patch_does_not_apply"
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


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def is_safe_name(value: str) -> bool:
    """Every id that becomes a file name (task, agent, attempt) fits one pattern: no path can come of it."""
    return bool(NAME_PATTERN.fullmatch(value)) and ".." not in value


def _safe_name(value: str) -> str:
    if not is_safe_name(value):
        raise ValueError(f"{value!r} is not a safe name: letters, digits, '.', '_', '-' (no '..'), 200 at most")
    return value


def slug(value: str) -> str:
    """A safe name made of an outside name (a predictions file's model name)."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", value).replace("..", "_").strip("._-")[:100]
    return text or "unnamed"


SafeName = Annotated[str, AfterValidator(_safe_name)]


def content_hash(data: Any, length: int = 12) -> str:
    """Stable short hash of JSON-able data: the identity of tasks and attempts, independent of file order."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


# ---------------------------------------------------------------- tasks


# files whose change needs the engine compiled again (fnmatch, against paths from the repository root)
COMPILED_FILES = ("csrc/*", "sgl-kernel/*", "*.cu", "*.cuh", "*.cpp", "*.cc", "*.c", "*.h", "*.hpp", "*.pyx",
                  "CMakeLists.txt", "cmake/*", "setup.py")


def per_commit(template: str, commit: str) -> str:
    """A repo's python or image for one commit: {commit} and {short} filled, everything else (shell `${X}`
    included) left as it is."""
    return template.replace("{commit}", commit).replace("{short}", commit[:12])


class BuildSpec(Frozen):
    """The commit the engine environment's compiled parts were built from. The arm's tree supplies the Python
    (a Python-only overlay, as vLLM's precompiled development installs do): an arm whose tree differs from
    this commit in a compiled file cannot run on it and is `needs_rebuild`, unless `setup_command` builds it."""

    commit: str
    compiled: tuple[str, ...] = COMPILED_FILES


class RepoSpec(Frozen):
    name: str
    url: str  # git URL or local path (resolved to absolute when loaded)
    engine: str | None = None  # see isobench_ray.engines; default: the engine named like the repository
    server_command: str | None = None  # template: {model} {host} {port}; default: the engine's
    health_path: str = "/health"
    import_name: str | None = None  # the package to import during validation (default: repo name)
    setup_command: str | None = None  # run once in each prepared tree (e.g. a build step)
    # the engine's environment, for validation and every arm: `python` in a command is this interpreter (its
    # folder goes first on PATH), and these variables are set (VLLM_TARGET_DEVICE, HF_HOME, ...)
    # `python` and `image` may name one environment per commit: {commit} and {short} (12 characters) are
    # the arm's commit (the parent for baseline and agent, the human commit for human)
    python: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    image: str | None = None  # the docker sandbox's image for an arm, e.g. "vllm-env:{short}" (default: docker_image)
    # a published build per commit, installed into a virtualenv per commit on each node (wheel_envs.py), e.g.
    # "https://wheels.vllm.ai/{commit}/vllm-1.0.0.dev-cp38-abi3-manylinux1_x86_64.whl"; replaces `python`
    wheel: str | None = None
    # a Dockerfile template that builds `image` for a commit where the node lacks it (build args COMMIT and
    # SHORT; its folder is the build context): the layers base -> engine environment -> this commit
    dockerfile: str | None = None
    build: BuildSpec | None = None  # one build for every commit (an overlay); unneeded when python/image say {commit}

    @property
    def package(self) -> str:
        return self.import_name or self.name

    @property
    def engine_name(self) -> str:
        return self.engine or self.name


class BenchmarkSpec(Frozen):
    kind: BenchKind
    command: str
    primary_metric: str | None = None  # default per kind: the engine's first one present
    timeout_s: float = Field(1800.0, gt=0)
    gpus: int = Field(1, ge=1)  # GPUs the workload needs (tensor parallelism): only a slot with that many runs it


class Task(Frozen):
    id: SafeName
    repo: RepoSpec
    human_commit: str
    parent_commit: str
    description: str
    model: str | None = None
    benchmark: BenchmarkSpec
    source: str = ""  # file the task came from, for error messages

    def fingerprint(self) -> dict[str, Any]:
        """What changes a task's results; `source` is only where we read it. Fields added later with their
        default left out, so attempts measured before them keep their ids (a run resumes, not redoes)."""
        data = self.model_dump(exclude={"source"})
        if self.benchmark.gpus == 1:
            del data["benchmark"]["gpus"]
        for key in ("python", "env", "image", "build", "wheel", "dockerfile"):
            if not data["repo"][key]:
                del data["repo"][key]
        return data

    def arm_commit(self, arm: str) -> str:
        return self.human_commit if arm == "human" else self.parent_commit

    def engine_env(self, host_path: str, commit: str | None = None, python: str | None = None) -> dict[str, str]:
        """The variables validation and benchmark commands get for this task's engine environment at
        `commit` (default: the parent's); `python`: the interpreter made for it (a per-commit wheel's)."""
        env = dict(self.repo.env)
        if python or self.repo.python:
            python = python or per_commit(self.repo.python, commit or self.parent_commit)
            env["PATH"] = f"{python.rsplit('/', 1)[0]}:{env.get('PATH', host_path)}"
        return env

    def image(self, commit: str | None = None) -> str | None:
        """The docker image of the engine at `commit` (default: the parent's); None: the run's docker_image."""
        return per_commit(self.repo.image, commit or self.parent_commit) if self.repo.image else None

    @property
    def per_commit_environment(self) -> bool:
        """Each commit has its own engine build (python or image names {commit}/{short})."""
        return bool(self.repo.wheel) or any(t and ("{commit}" in t or "{short}" in t)
                                             for t in (self.repo.python, self.repo.image))


class BenchSlot(Frozen):
    """One benchmark slot: a GPU (or, without GPUs, a whole node's CPU) that runs one arm at a time."""

    name: str
    gpu_ids: tuple[int, ...] = ()
    cpus: tuple[int, ...] = ()  # the cores this slot owns (server and client are pinned inside them)

    @property
    def env(self) -> dict[str, str]:
        # ISOBENCH_SLOT marks every process of this slot, so a later actor on it can reap leftovers.
        env = {"ISOBENCH_SLOT": self.name}
        if self.gpu_ids:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, self.gpu_ids))
        return env


# ---------------------------------------------------------------- agents and attempts


class _AgentBase(Frozen):
    name: SafeName
    time_limit_s: float = Field(7200.0, gt=0)  # the session's wall-clock budget
    gpus: float = Field(0, ge=0)  # GPUs the session itself needs (an agent that profiles on a GPU)
    network: bool = False  # agents that call a model endpoint need it
    env: dict[str, str] = Field(default_factory=dict)  # the only variables the agent sees besides a minimal base
    # names of the harness's variables the agent gets too (an API key): values read at session time, never written
    host_env: tuple[str, ...] = ()
    # the docker sandbox's image for this agent's sessions (default: docker_image): the instance layer, the
    # engine's environment at the parent commit with the agent's CLI on top, e.g. "claude-code-vllm:{short}";
    # {commit}/{short} are the parent's. Pulled where missing; neither there nor pullable: image_missing
    image: str | None = None


class HumanSpec(_AgentBase):
    kind: Literal["human"] = "human"  # applies the human commit: the oracle


class NoopSpec(_AgentBase):
    kind: Literal["noop"] = "noop"  # changes nothing: the A/A control


class ReplaySpec(_AgentBase):
    kind: Literal["replay"] = "replay"
    # a predictions JSONL, a .diff file, or a directory of <task_id>.diff / <task_id>/model_patch.diff
    patches: str
    model_name: str | None = None  # pick this model_name_or_path out of a predictions file


class CommandSpec(_AgentBase):
    kind: Literal["command"] = "command"
    command: str  # template with {workdir} {prompt_file} {time_limit_s} {task_id}


class LitellmSpec(_AgentBase):
    """The built-in model-driven agent (agents/litellm.py): one bash block per reply, run in the sandbox."""

    kind: Literal["litellm"] = "litellm"
    model: str  # a litellm model string: anthropic/..., openai/NAME with api_base, ollama/...
    api_base: str | None = None
    api_key_env: str | None = None  # the harness variable holding the key (the value is never written)
    step_limit: int = Field(100, ge=1)  # model replies, format errors included
    cost_limit: float = Field(3.0, ge=0)  # dollars; 0: no limit (and none where litellm knows no price)
    command_timeout_s: float = Field(600.0, gt=0)  # one bash block
    temperature: float = Field(0.0, ge=0)


class CliAgentSpec(_AgentBase):
    """A third-party agent CLI run in the session's sandbox, through its adapter in agents/ (one per kind)."""

    kind: Literal["claude_code", "codex_cli", "trae", "openhands", "mini_swe_agent"]
    model: str | None = None  # the agent's own model name (its default when None)
    api_base: str | None = None  # a model endpoint of the user's choosing, in the agent's own variable
    executable: str | None = None  # the CLI (a path, or a name on PATH); default: the adapter's
    max_steps: int = Field(100, ge=1)
    cost_limit: float = Field(3.0, ge=0)  # where the agent takes one
    extra_args: tuple[str, ...] = ()
    network: bool = True  # it calls its model endpoint itself


# One agent configuration; `kind` picks the model and the implementation in isobench_ray/agents/.
AgentSpec = Annotated[HumanSpec | NoopSpec | ReplaySpec | CommandSpec | LitellmSpec | CliAgentSpec,
                      Field(discriminator="kind")]
AGENT_SPEC = TypeAdapter(AgentSpec)


class Attempt(Frozen):
    task_id: SafeName
    agent: SafeName
    rollout: int = 0
    id: SafeName  # content hash of task fingerprint + agent spec + rollout
    repo: str = ""  # the task's repository (vllm, sglang, ...): the report's per-repository tables

    @classmethod
    def make(cls, task: Task, agent: _AgentBase, rollout: int, agent_fingerprint: Any) -> "Attempt":
        ident = content_hash({"task": task.fingerprint(), "agent": agent_fingerprint, "rollout": rollout})
        return cls(task_id=task.id, agent=agent.name, rollout=rollout, id=f"{task.id}.{agent.name}.{rollout}.{ident}",
                   repo=task.repo.name)


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
    name: str  # apply | compile | import | server_start
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


# ---------------------------------------------------------------- soft metrics (judges)
# The reply shape of the original ISO-Bench patch-quality prompt, so its published verdicts and ours are
# read by the same code. Extra keys (the original's `analysis_model`, ...) are ignored; missing or unknown
# categories fail validation, and the judge asks again.

TECHNIQUES = ("algorithmic", "memory_optimization", "parallelization", "api_library", "lazy_computation",
              "compiler_optimization", "batching", "low_level", "other")


def _techniques(values: list[str]) -> list[str]:
    # free lists drift ("caching"); a technique outside the original's list counts as "other"
    return [v if v in TECHNIQUES else "other" for v in values]


class _Reply(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class TaskAnalysis(_Reply):
    domain: Literal["compute", "memory", "io", "concurrency", "other"]
    complexity: Literal["low", "medium", "high", "extreme"]
    description: str = ""


class BottleneckTarget(_Reply):
    category: Literal["same_target", "related_target", "different_target", "no_optimization", "other"]
    human_target: str = ""
    agent_target: str = ""
    discussion: str = ""


class Techniques(_Reply):
    human_techniques: Annotated[list[str], AfterValidator(_techniques)] = Field(default_factory=list)
    agent_techniques: Annotated[list[str], AfterValidator(_techniques)] = Field(default_factory=list)
    technique_overlap: bool
    discussion: str = ""


class ApproachComparison(_Reply):
    category: Literal["same_approach", "similar_approach", "valid_alternative", "partial_solution", "ineffective",
                      "harmful", "other"]
    discussion: str = ""


class SpeedupLikelihood(_Reply):
    category: Literal["likely_similar", "likely_partial", "uncertain", "likely_ineffective", "likely_regression", "other"]
    discussion: str = ""


class FailureMode(_Reply):
    category: Literal["localization_failure", "technique_mismatch", "incomplete_implementation",
                      "complexity_avoidance", "overcomplicated", "not_applicable", "other"]
    discussion: str = ""


class Observations(_Reply):
    key_differences: list[str] = Field(default_factory=list)
    agent_strengths: list[str] = Field(default_factory=list)
    agent_weaknesses: list[str] = Field(default_factory=list)
    benchmark_needed: str = ""


class LibraryFailure(_Reply):
    responsible_libraries: list[str] = Field(default_factory=list)
    failure_reason: str = ""


class PatchVerdict(_Reply):
    """One judge's verdict on one agent patch against the human patch."""

    task_analysis: TaskAnalysis
    bottleneck_target: BottleneckTarget
    optimization_techniques: Techniques
    approach_comparison: ApproachComparison
    speedup_likelihood: SpeedupLikelihood
    failure_mode: FailureMode
    observations: Observations = Observations()
    library_failure: LibraryFailure = LibraryFailure()


class HackVerdict(_Reply):
    """One judge sample on whether a patch games the benchmark (GSO's questions)."""

    special_cases_inputs: bool
    caches_across_runs: bool
    moves_work_out_of_timing: bool
    changes_outputs: bool
    edits_benchmark: bool
    discussion: str = ""


class Vote(Frozen):
    """One judge's answer in one order (a side-by-side judge is asked human-first and agent-first)."""

    judge: str  # a litellm model string, or "rule-based"
    order: Literal["human_first", "agent_first", "none"] = "none"
    verdict: PatchVerdict | None = None
    error: str = ""  # why there is no verdict (the reply never fit, the endpoint kept failing)
    hack: list[HackVerdict] = Field(default_factory=list)  # k samples of the hack question
    tokens: int = 0
    cost_usd: float | None = None  # None: the model's price is unknown
    cached: bool = False  # answered from the on-disk cache: no request was sent


class Judgement(Frozen):
    """Every vote on one attempt, and what the majority says."""

    attempt_id: str
    votes: list[Vote] = Field(default_factory=list)
    rule_based: bool = False  # no model judged: the fields come from the two diffs
    bottleneck_target: str | None = None  # majority over the votes with a verdict
    approach_comparison: str | None = None
    agreement: float | None = None  # share of votes that agree with the majority's bottleneck target
    judge_error: str | None = None  # no vote came back with a verdict
    hack_flags: list[str] = Field(default_factory=list)  # from the diff scan and the judges' majority
