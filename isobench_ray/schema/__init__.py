"""The pipeline's boundary types: Task -> Attempt -> Session/Patch -> Validation -> Measurements -> Scores.

Every stage takes and returns these pydantic models; the results store writes them as JSON and the
report reads them back. They carry data only: no I/O, no Ray. Import them from here:

- `base`: frozen models, safe names, content hashes;
- `tasks`: tasks, repositories, benchmarks, slots, agent specs and attempts;
- `records`: failure causes, `StageError`, and what the stages produce (Session, Validation, Run,
  ArmResult, Measurements, Scores, AttemptRecord);
- `judging`: the judges' reply shapes, votes and judgements.
"""

from isobench_ray.schema.base import NAME_PATTERN, Frozen, SafeName, content_hash, is_safe_name, slug
from isobench_ray.schema.judging import (
    TECHNIQUES,
    ApproachComparison,
    BottleneckTarget,
    FailureMode,
    HackVerdict,
    Judgement,
    LibraryFailure,
    Observations,
    PatchVerdict,
    SpeedupLikelihood,
    TaskAnalysis,
    Techniques,
    Vote,
)
from isobench_ray.schema.records import (
    ALL_ARMS,
    ARMS,
    MAY_BE_INFINITE,
    NOISE_ARM,
    Arm,
    ArmResult,
    AttemptRecord,
    Check,
    FailureCause,
    HardClass,
    Measurements,
    Run,
    Scores,
    Session,
    StageError,
    Status,
    Validation,
    VerdictCause,
)
from isobench_ray.schema.tasks import (
    AGENT_SPEC,
    COMPILED_FILES,
    AgentSpec,
    Attempt,
    BenchKind,
    BenchmarkSpec,
    BenchSlot,
    BuildSpec,
    CliAgentSpec,
    CommandSpec,
    HumanSpec,
    LitellmSpec,
    NoopSpec,
    PerfScript,
    ReplaySpec,
    RepoSpec,
    Task,
    per_commit,
)

__all__ = [
    "AGENT_SPEC", "ALL_ARMS", "ARMS", "COMPILED_FILES", "MAY_BE_INFINITE", "NAME_PATTERN", "NOISE_ARM", "TECHNIQUES",
    "AgentSpec", "ApproachComparison", "Arm", "ArmResult", "Attempt", "AttemptRecord", "BenchKind", "BenchSlot",
    "BenchmarkSpec", "BottleneckTarget", "BuildSpec", "Check", "CliAgentSpec", "CommandSpec", "FailureCause",
    "FailureMode", "Frozen", "HackVerdict", "HardClass", "HumanSpec", "Judgement", "LibraryFailure", "LitellmSpec",
    "Measurements", "NoopSpec", "Observations", "PatchVerdict", "PerfScript", "RepoSpec", "ReplaySpec", "Run", "SafeName",
    "Scores", "Session", "SpeedupLikelihood", "StageError", "Status", "Task", "TaskAnalysis", "Techniques",
    "Validation", "VerdictCause", "Vote", "content_hash", "is_safe_name", "per_commit", "slug",
]
