"""Soft metrics: the judges' reply shapes (PatchVerdict, HackVerdict), one judge's Vote and the Judgement
on an attempt."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from isobench_ray.schema.base import Frozen

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
