"""One task from one entry of any format: the commits, the repository, the benchmark command checked by its
engine, every problem recorded with file, task id and field. The loaders of each format are in tasks.py."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pydantic import ValidationError

from isobench_ray.engines import Engine, engine_named
from isobench_ray.engines.perf_command import PerfCommand
from isobench_ray.schema import BenchmarkSpec, PerfScript, RepoSpec, Task, is_safe_name

KNOWN_REPOS: dict[str, dict[str, str]] = {
    "vllm": {"url": "https://github.com/vllm-project/vllm.git"},
    "sglang": {"url": "https://github.com/sgl-project/sglang.git"},
}


def repo_spec(name: str, fields: dict[str, Any]) -> RepoSpec:
    """A repository entry with its engine's defaults (server command, readiness path, package name)."""
    spec = {**KNOWN_REPOS.get(name, {}), **fields, "name": name}
    engine = engine_named(spec.get("engine") or name)
    defaults = {"server_command": engine.server_template, "health_path": engine.health_path, "import_name": engine.import_name}
    return RepoSpec(**{k: v for k, v in defaults.items() if v is not None} | spec)


_SHA = re.compile(r"^[0-9a-f]{7,40}$")


# A model as the harness hands it to servers, clients and lm-eval: a Hugging Face id, a local path, an Ollama tag.
# Nothing a shell or an argument parser reads as more than one plain word: no flag, space, quote, `;` or `$`.
_MODEL = re.compile(r"[A-Za-z0-9._/:@+][A-Za-z0-9._/:@+-]{0,499}")
_URL_PATH = re.compile(r"/[A-Za-z0-9._~%/?=&+-]*")


def model_problem(model: Any) -> str | None:
    """Why `model` (a task's model field, or the command's --model) is not a model name; None when it is one."""
    if model is None or (isinstance(model, str) and _MODEL.fullmatch(model)):
        return None
    return (f"{str(model)[:80]!r} is not a model name: letters, digits and . _ - / : @ + only (500 at most, "
            "not starting with -)")


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
# A repository path here is a user's mistake or an attack, never a repository.
_SYSTEM_DIRS = ("/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/boot", "/dev", "/proc", "/sys", "/var/lib", "/root/.ssh")


def _repo_problems(repo: RepoSpec) -> list[tuple[str, str]]:
    out = []
    if not is_safe_name(repo.name):  # it names folders (the per-commit environments)
        out.append(("repo.name", f"{repo.name!r} is not a safe name: letters, digits, '.', '_', '-' (no '..')"))
    if not _URL_PATH.fullmatch(repo.health_path):
        out.append(("repo.health_path", f"{repo.health_path!r} is not a URL path: '/' then letters, digits and . _ ~ % / ? = & + -"))
    if repo.import_name and not _IDENTIFIER.fullmatch(repo.import_name):
        out.append(("repo.import_name", f"{repo.import_name!r} is not a Python module name"))
    if "://" not in repo.url and not repo.url.startswith("git@"):
        real = str(Path(repo.url).resolve())
        if real == "/" or any(real == d or real.startswith(d + "/") for d in _SYSTEM_DIRS):
            out.append(("repo.url", f"{repo.url} resolves to {real}, a system directory, not a repository"))
    if repo.server_command and "{port}" not in repo.server_command:
        out.append(("repo.server_command", "has no {port}: the harness chooses a free port for every start and the "
                                           "server must listen on it ({model} {host} {port} are filled in; shell "
                                           "${VAR} and other braces are left as written)"))
    if repo.python and "{" not in repo.python and not Path(repo.python).is_file():  # per-commit ones: per arm
        out.append(("repo.python", f"{repo.python} is not an interpreter on this machine (build the engine's "
                                   f"environment first)"))
    if repo.dockerfile and not repo.image:
        out.append(("repo.dockerfile", "a Dockerfile template needs `image` (the tag it builds, e.g. env:{short})"))
    if repo.dockerfile and not Path(repo.dockerfile).is_file():
        out.append(("repo.dockerfile", f"{repo.dockerfile} does not exist"))
    if repo.python and repo.wheel:
        out.append(("repo.wheel", "give either python (an installed engine) or wheel (one installed per commit), not both"))
    for key in ("python", "image", "wheel"):
        value = getattr(repo, key) or ""
        if leftover := set(re.findall(r"(?<!\$)\{(\w*)\}", value)) - {"commit", "short"}:
            out.append((f"repo.{key}", f"{value!r}: unknown placeholder(s) {sorted(leftover)}; "
                                         "{commit} and {short} are the arm's commit"))
    return out


class TaskFileError(ValueError):
    """The file as a whole cannot be read (syntax, shape); names the file."""


@dataclass
class Problem:
    source: str
    task_id: str
    field: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.severity.upper():7} {self.source} [{self.task_id}] {self.field}: {self.message}"


@dataclass
class LoadResult:
    tasks: list[Task] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    records: int = 0

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def extend(self, other: "LoadResult") -> None:
        self.tasks += other.tasks
        self.problems += other.problems
        self.records += other.records


def default_description(repo: str, perf_command: str) -> str:
    # The bottleneck is described through its workload: upstream records carry the commit message,
    # which would give the fix away, so it is never shown to the agent.
    return (
        f"The {repo} code base at this commit is slower than it should be on the workload below.\n"
        f"Find the bottleneck and make this workload faster without changing behaviour.\n\n"
        f"Workload:\n    {perf_command}\n"
    )


class Resolver:
    """Resolves `commit^` for records without a parent commit, when a local repository is given."""

    def __init__(self, repo_path: str | None):
        self.repo = None
        if repo_path:
            import git

            self.repo = git.Repo(repo_path)

    def parent_of(self, commit: str) -> str | None:
        if self.repo is None:
            return None
        try:
            return self.repo.commit(commit).parents[0].hexsha
        except Exception:
            return None

    def full(self, commit: str) -> str:
        if self.repo is None or len(commit) == 40:
            return commit
        try:
            return self.repo.commit(commit).hexsha
        except Exception:
            return commit


Report = Callable[..., None]  # problem(field, message, severity="error") for one task


def _commits(raw: dict[str, Any], resolver: Resolver, problem: Report) -> tuple[str | None, str | None, bool]:
    """The human and parent commits (the parent resolved as human^ where a repository is given), and
    whether both are usable."""
    human = raw.get("human_commit")
    parent = raw.get("parent_commit")
    usable = True  # keep checking after the first problem: the user sees them all at once
    if not human or not _SHA.match(str(human)):
        problem("human_commit", f"missing or not a commit hash: {human!r}")
        usable = False
    else:
        human = resolver.full(str(human))
        if not parent:
            parent = resolver.parent_of(human)
            if parent:
                problem("parent_commit", f"missing; resolved as {human[:12]}^ = {parent[:12]}", "warning")
            else:
                problem("parent_commit", f"missing; give --repo PATH to resolve it as {human[:12]}^")
                usable = False
    if parent and not _SHA.match(str(parent)):
        problem("parent_commit", f"not a commit hash: {parent!r}")
        usable = False
    return human, parent, usable


def _repo_and_metric_ok(repo: RepoSpec, engine: Engine, metric: str | None, problem: Report) -> bool:
    usable = True
    for fld, msg in _repo_problems(repo):
        problem(fld, msg)
        usable = False
    if metric and not engine.knows_metric(metric):
        problem("benchmark.primary_metric", f"unknown metric {metric!r} for engine {engine.name}: its direction is not known")
        usable = False
    return usable


def _with_server_command(repo: RepoSpec, cmd: PerfCommand) -> RepoSpec:
    """The repo with the command's own server line, and the server flags the command carried, where it has them."""
    server_command = cmd.server_command or repo.server_command
    if cmd.kind == "serving" and cmd.server_args and server_command:
        server_command = f"{server_command} {shlex.join(cmd.server_args)}"  # one shell word each, as they were
    if server_command != repo.server_command:
        repo = repo.model_copy(update={"server_command": server_command})
    return repo


def _benchmark(bench: dict[str, Any], cmd: PerfCommand, problem: Report) -> BenchmarkSpec | None:
    """The benchmark entry with the command's kind, the cleaned command and the GPUs it needs."""
    declared_gpus = bench.get("gpus")
    if isinstance(declared_gpus, int) and declared_gpus < cmd.gpus:
        problem("benchmark.gpus", f"declared {declared_gpus}, but the command's tensor parallelism needs {cmd.gpus}; using {cmd.gpus}", "warning")
    gpus = max(cmd.gpus, declared_gpus if isinstance(declared_gpus, int) else 1)
    try:
        return BenchmarkSpec(**{**bench, "kind": cmd.kind, "command": cmd.command, "gpus": gpus})
    except ValidationError as exc:
        for err in exc.errors():
            problem(".".join(["benchmark", *map(str, err["loc"])]), err["msg"])
        return None


def build_task(source: str, task_id: str, raw: dict[str, Any], repo: RepoSpec, problems: list[Problem],
           resolver: Resolver, declared_kind: str | None) -> Task | None:
    def problem(fld: str, msg: str, severity: str = "error") -> None:
        problems.append(Problem(source, task_id, fld, msg, severity))

    human, parent, usable = _commits(raw, resolver, problem)
    bench = dict(raw.get("benchmark") or {})
    if (declared_kind or bench.get("kind")) == "script":
        return script_task(source, task_id, raw, repo, problem, (human, parent, usable))
    model = raw.get("model")
    if why := model_problem(model):  # it reaches command lines: refused before anything is made of it
        problem("model", why)
        return None
    engine = engine_named(repo.engine_name)
    usable = _repo_and_metric_ok(repo, engine, bench.get("primary_metric"), problem) and usable
    cmd = engine.analyze(bench.get("command"), model=model, declared_kind=declared_kind or bench.get("kind"))
    for f in cmd.findings:
        problem("benchmark.command" if f.field == "perf_command" else f.field, f.message, f.severity)
    if not usable or any(f.severity == "error" for f in cmd.findings):
        return None
    if model is None and "--model" in cmd.argv:
        model = cmd.argv[cmd.argv.index("--model") + 1]
        if why := model_problem(model):
            problem("benchmark.command", f"--model {why}")
            return None
    repo = _with_server_command(repo, cmd)
    if cmd.kind == "serving" and not repo.server_command:
        problem("repo.server_command", "a serving benchmark needs a server command (in the repo entry)")
        return None
    benchmark = _benchmark(bench, cmd, problem)
    if benchmark is None:
        return None
    try:
        return Task(
            id=task_id, repo=repo, human_commit=human, parent_commit=str(parent), model=model,
            description=raw.get("description") or default_description(repo.name, cmd.command),
            benchmark=benchmark, source=source, commit_date=_date(raw.get("commit_date")),
        )
    except ValidationError as exc:
        for err in exc.errors():
            problem(".".join(str(x) for x in err["loc"]) or "task", err["msg"])
        return None


# What a performance test does and a unit test of the engine does not: time something, and say the time
_TIMING = re.compile(r"perf_counter|time\.time\(|timeit|avg_ms|Execution time|cuda\.Event")


def _date(value: Any) -> str | None:
    """A commit date as ISO 8601 text (YAML reads an unquoted date as a date)."""
    return None if value in (None, "") else (value.isoformat() if hasattr(value, "isoformat") else str(value))


def perf_script(entry: Any, folder: Path, index: int, problem) -> PerfScript | None:
    """One entry of `benchmark.scripts`: {name, text} inline, or {path} (relative to the task file), and its
    `convention` (iso, gso). A file of unit tests with no timing in it is refused: it measures nothing."""
    field = f"benchmark.scripts[{index}]"
    if not isinstance(entry, dict) or not (entry.get("text") or entry.get("path")):
        problem(field, "expected a mapping with `text` (and `name`) or `path`")
        return None
    text, name = entry.get("text"), entry.get("name")
    if entry.get("path"):
        path = (folder / str(entry["path"])).resolve()
        if not path.is_file():
            problem(f"{field}.path", f"no such file: {path}")
            return None
        text, name = path.read_text(errors="replace"), name or path.name
    if not _TIMING.search(str(text)):
        kind = "a file of unit tests" if re.search(r"^\s*def test_", str(text), re.M) else "a script"
        problem(field, f"{kind} that times nothing (no perf_counter, timeit, avg_ms or 'Execution time'): "
                       "not a performance test")
        return None
    try:
        return PerfScript(name=name or f"perf_{index}.py", text=str(text), convention=entry.get("convention", "iso"))
    except ValidationError as exc:
        for err in exc.errors():
            problem(f"{field}.{'.'.join(map(str, err['loc']))}", err["msg"])
        return None


def script_task(source: str, task_id: str, raw: dict[str, Any], repo: RepoSpec, problem, commits: tuple) -> Task | None:
    """A `script` task: its performance tests instead of an engine benchmark command (engines/scripts.py)."""
    human, parent, usable = commits
    bench = dict(raw.get("benchmark") or {})
    entries = bench.get("scripts") or []
    if not isinstance(entries, list) or not entries:
        problem("benchmark.scripts", "a script task needs at least one performance test")
        return None
    scripts = [perf_script(e, Path(source).parent, i, problem) for i, e in enumerate(entries)]
    if not usable or None in scripts:
        return None
    if len({s.name for s in scripts}) < len(scripts):
        problem("benchmark.scripts", "two tests of one task share a name")
        return None
    try:
        spec = BenchmarkSpec(kind="script", scripts=tuple(scripts), timeout_s=bench.get("timeout_s", 1800.0))
        return Task(id=task_id, repo=repo, human_commit=human, parent_commit=str(parent), model=raw.get("model"),
                    description=raw.get("description") or f"The {repo.name} code base at this commit is slower than it "
                    "should be on its performance tests. Find the bottleneck and make them faster without changing "
                    "behaviour.", benchmark=spec, source=source, commit_date=_date(raw.get("commit_date")))
    except ValidationError as exc:
        for err in exc.errors():
            problem(".".join(str(x) for x in err["loc"]) or "task", err["msg"])
        return None
