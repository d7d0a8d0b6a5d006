"""What is run: tasks (a repository, two commits, a benchmark), benchmark slots, agent specs and attempts."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter

from isobench_ray.schema.base import Frozen, SafeName, content_hash

BenchKind = Literal["serving", "latency", "throughput", "script"]



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


class PerfScript(Frozen):
    """A performance test that a `script` task runs in every arm (engines/scripts.py): its text travels with
    the task. `convention`: how it is called and what it prints. `iso` (ISO-Bench's generated tests):
    `python TEST.py [--reference|--eqcheck] --prefix P`, one JSON line with `avg_ms`. `gso` (GSO's):
    `python TEST.py RESULT_FILE [--reference|--eqcheck] --file_prefix P`, `Execution time: <s>s` appended to
    RESULT_FILE."""

    name: SafeName  # its file name in the arm's tree (under .isobench-perf/)
    text: str = Field(min_length=1)
    convention: Literal["iso", "gso"] = "iso"


class BenchmarkSpec(Frozen):
    kind: BenchKind
    command: str = ""  # what runs ("" for `script`, whose command the harness writes from `scripts`)
    primary_metric: str | None = None  # default per kind: the engine's first one present
    timeout_s: float = Field(1800.0, gt=0)
    gpus: int = Field(1, ge=1)  # GPUs the workload needs (tensor parallelism): only a slot with that many runs it
    scripts: tuple[PerfScript, ...] = ()  # the `script` kind's performance tests


class Task(Frozen):
    id: SafeName
    repo: RepoSpec
    human_commit: str
    parent_commit: str
    description: str
    model: str | None = None
    benchmark: BenchmarkSpec
    commit_date: str | None = None  # the human commit's date (ISO 8601): the contamination split by knowledge cutoff
    source: str = ""  # file the task came from, for error messages

    def fingerprint(self) -> dict[str, Any]:
        """What changes a task's results; `source` is only where we read it. Fields added later with their
        default left out, so attempts measured before them keep their ids (a run resumes, not redoes)."""
        data = self.model_dump(exclude={"source"})
        if self.benchmark.gpus == 1:
            del data["benchmark"]["gpus"]
        if not self.benchmark.scripts:
            del data["benchmark"]["scripts"]
        if self.commit_date is None:
            del data["commit_date"]
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
    # the model's training data ends here (YYYY-MM): the report splits this agent's rates into tasks whose commit
    # came before and after it (contamination); it changes nothing the agent does
    knowledge_cutoff: str | None = Field(None, pattern=r"^\d{4}-(0[1-9]|1[0-2])$")


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
