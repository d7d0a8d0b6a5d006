"""Loading tasks from every format we accept, and reporting every problem with file, task id and field.

Formats (see tasks/README.md):
- our YAML (`repos:` + `tasks:`);
- the upstream ISO-Bench runner mapping: a JSON object keyed by short commit (`human_commit_full` or
  `commit_full`, `parent_commit`, `model`, `perf_command`, `has_serving/...` or `benchmark_mode`);
- the upstream Hugging Face dataset record (`commit_hash`, `perf_command`, `models`, ...) as JSON/JSONL
  files, or a dataset loaded with `datasets.load_dataset` (`hf:NAME[:CONFIG[:SPLIT]]` or a local file).

A task with an error-severity problem is not returned; the problems say why.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import ValidationError

from isobench_ray.engines import engine_named
from isobench_ray.schema import BenchmarkSpec, RepoSpec, Task, is_safe_name

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
# upstream `benchmark_mode` values; `standalone` means an offline script, the command says which
_MODES = {"serving": "serving", "standalone": None, "prefix_caching": "latency", "latency": "latency", "throughput": "throughput"}
_SHA = re.compile(r"^[0-9a-f]{7,40}$")


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
# A repository path here is a user's mistake or an attack, never a repository.
_SYSTEM_DIRS = ("/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/boot", "/dev", "/proc", "/sys", "/var/lib", "/root/.ssh")


def _repo_problems(repo: RepoSpec) -> list[tuple[str, str]]:
    out = []
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


class _Resolver:
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


def _build(source: str, task_id: str, raw: dict[str, Any], repo: RepoSpec, problems: list[Problem],
           resolver: _Resolver, declared_kind: str | None) -> Task | None:
    def problem(fld: str, msg: str, severity: str = "error") -> None:
        problems.append(Problem(source, task_id, fld, msg, severity))

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
    bench = dict(raw.get("benchmark") or {})
    model = raw.get("model")
    for fld, msg in _repo_problems(repo):
        problem(fld, msg)
        usable = False
    engine = engine_named(repo.engine_name)
    cmd = engine.analyze(bench.get("command"), model=model, declared_kind=declared_kind or bench.get("kind"))
    metric = bench.get("primary_metric")
    if metric and not engine.knows_metric(metric):
        problem("benchmark.primary_metric", f"unknown metric {metric!r} for engine {engine.name}: its direction is not known")
        usable = False
    for f in cmd.findings:
        problem("benchmark.command" if f.field == "perf_command" else f.field, f.message, f.severity)
    if not usable or any(f.severity == "error" for f in cmd.findings):
        return None
    if model is None and "--model" in cmd.argv:
        model = cmd.argv[cmd.argv.index("--model") + 1]
    server_command = cmd.server_command or repo.server_command
    if cmd.kind == "serving" and cmd.server_args and server_command:
        server_command = f"{server_command} {' '.join(cmd.server_args)}"
    if server_command != repo.server_command:
        repo = repo.model_copy(update={"server_command": server_command})
    if cmd.kind == "serving" and not repo.server_command:
        problem("repo.server_command", "a serving benchmark needs a server command (in the repo entry)")
        return None
    declared_gpus = bench.get("gpus")
    if isinstance(declared_gpus, int) and declared_gpus < cmd.gpus:
        problem("benchmark.gpus", f"declared {declared_gpus}, but the command's tensor parallelism needs {cmd.gpus}; using {cmd.gpus}", "warning")
    gpus = max(cmd.gpus, declared_gpus if isinstance(declared_gpus, int) else 1)
    bench.update(kind=cmd.kind, command=cmd.command, gpus=gpus)
    try:
        benchmark = BenchmarkSpec(**bench)
    except ValidationError as exc:
        for err in exc.errors():
            problem(".".join(["benchmark", *map(str, err["loc"])]), err["msg"])
        return None
    try:
        return Task(
            id=task_id, repo=repo, human_commit=human, parent_commit=str(parent), model=model,
            description=raw.get("description") or default_description(repo.name, cmd.command),
            benchmark=benchmark, source=source,
        )
    except ValidationError as exc:
        for err in exc.errors():
            problem(".".join(str(x) for x in err["loc"]) or "task", err["msg"])
        return None


# ---------------------------------------------------------------- our YAML


def load_yaml(path: Path, resolver: _Resolver) -> LoadResult:
    source = str(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise TaskFileError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("tasks"), list):
        raise TaskFileError(f"{source}: expected a mapping with a `tasks:` list (see tasks/README.md)")
    out = LoadResult(records=len(doc["tasks"]))
    repos: dict[str, RepoSpec] = {}
    for name, spec in (doc.get("repos") or {}).items():
        spec = dict(spec or {})
        url = spec.get("url", "")
        if url and "://" not in url and not url.startswith("git@"):
            spec["url"] = str((path.parent / url).resolve())
        python = spec.get("python")
        if isinstance(python, str) and "/" in python and not python.startswith("/"):  # relative to this file
            spec["python"] = str((path.parent / python).absolute())  # not resolved: a venv's bin/python is a link
        if isinstance(spec.get("dockerfile"), str):
            spec["dockerfile"] = str((path.parent / spec["dockerfile"]).resolve())
        try:
            repos[name] = repo_spec(name, spec)
        except ValidationError as exc:
            for err in exc.errors():
                out.problems.append(Problem(source, f"repos.{name}", ".".join(map(str, err["loc"])), err["msg"]))
    seen: set[str] = set()
    for i, raw in enumerate(doc["tasks"]):
        if not isinstance(raw, dict):
            out.problems.append(Problem(source, f"tasks[{i}]", "task", "expected a mapping"))
            continue
        task_id = str(raw.get("id") or f"tasks[{i}]")
        if "id" not in raw or not is_safe_name(task_id):
            out.problems.append(Problem(source, task_id, "id", "missing, or not made of letters, digits, '-', '_', '.' "
                                                               "(no '..', 200 at most)"))
            continue
        if task_id in seen:
            out.problems.append(Problem(source, task_id, "id", "duplicate task id"))
            continue
        seen.add(task_id)
        repo_name = raw.get("repo")
        repo = repos.get(repo_name) or (repo_spec(repo_name, {}) if repo_name in KNOWN_REPOS else None)
        if repo is None:
            out.problems.append(Problem(source, task_id, "repo", f"unknown repo {repo_name!r}; define it under `repos:`"))
            continue
        unknown = set(raw) - {"id", "repo", "human_commit", "parent_commit", "description", "model", "benchmark", "normalizations"}
        if unknown:
            out.problems.append(Problem(source, task_id, ",".join(sorted(unknown)), "unknown field(s)"))
            continue
        if not isinstance(raw.get("benchmark"), dict):
            out.problems.append(Problem(source, task_id, "benchmark", "missing `benchmark:` mapping with kind and command"))
            continue
        # what the file's author changed in an upstream record: said on every validation, never silent
        notes = raw.get("normalizations") or []
        if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
            out.problems.append(Problem(source, task_id, "normalizations", "expected a list of strings"))
            continue
        for note in notes:
            out.problems.append(Problem(source, task_id, "normalized", note, "warning"))
        kind = raw["benchmark"].get("kind")
        if kind not in ("serving", "latency", "throughput"):
            out.problems.append(Problem(source, task_id, "benchmark.kind", f"unknown benchmark kind {kind!r}: serving, latency or throughput"))
            continue
        task = _build(source, task_id, raw, repo, out.problems, resolver, kind)
        if task:
            out.tasks.append(task)
    return out


# ---------------------------------------------------------------- upstream shapes


def _repo_for(name_hint: str, command: str | None, repo_override: str | None) -> RepoSpec:
    name = "sglang" if ("sglang" in name_hint.lower() or "sglang" in (command or "")) else "vllm"
    fields = {}
    if repo_override:
        fields["url"] = str(Path(repo_override).resolve()) if Path(repo_override).exists() else repo_override
    return repo_spec(name, fields)


def _upstream_kind(rec: dict[str, Any], key: str, source: str, problems: list[Problem]) -> str | None:
    if "benchmark_mode" in rec:
        mode = rec["benchmark_mode"]
        if mode is None:
            return None
        if mode not in _MODES:
            problems.append(Problem(source, key, "benchmark_mode", f"unknown benchmark kind {mode!r}"))
            return "invalid"
        return _MODES[mode]
    flags = [k for k in ("serving", "latency", "throughput") if rec.get(f"has_{k}")]
    return flags[0] if len(flags) == 1 else None


def _upstream_record(rec: dict[str, Any], key: str, source: str, name_hint: str, resolver: _Resolver,
                     repo_override: str | None) -> LoadResult:
    out = LoadResult(records=1)
    human = rec.get("human_commit_full") or rec.get("commit_full") or rec.get("commit_hash") or key
    command = rec.get("perf_command")
    models = rec.get("models") or []
    model = rec.get("model") or (models[0] if models else None)
    kind = _upstream_kind(rec, key, source, out.problems)
    if kind == "invalid":
        return out
    for fld, value in rec.items():
        if fld in ("patch_path", "_sources") or not isinstance(value, str):
            continue
        if re.match(r"^(/home/|/root/|/Users/)", value):
            out.problems.append(Problem(source, key, fld, f"path from someone's home directory ({value[:60]}...); ignored", "warning"))
    repo = _repo_for(name_hint, command, repo_override)
    raw = {"human_commit": human, "parent_commit": rec.get("parent_commit"), "model": model,
           "benchmark": {"command": command}}
    task = _build(source, key, raw, repo, out.problems, resolver, kind)
    if task:
        out.tasks.append(task)
    return out


def _records_from_json(doc: Any, source: str) -> Iterable[tuple[str, dict[str, Any]]]:
    if isinstance(doc, dict) and all(isinstance(v, dict) for v in doc.values()):
        return doc.items()  # runner mapping keyed by short commit
    if isinstance(doc, list) and all(isinstance(v, dict) for v in doc):
        return ((str(r.get("commit_hash") or r.get("human_commit_full") or f"record[{i}]")[:8], r) for i, r in enumerate(doc))
    raise TaskFileError(f"{source}: expected a JSON object of records keyed by commit, or a list of records")


def load_upstream(path: Path, resolver: _Resolver, repo_override: str | None) -> LoadResult:
    source = str(path)
    text = path.read_text()
    try:
        if path.suffix == ".jsonl":
            doc = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TaskFileError(f"{source}: not valid JSON: line {exc.lineno}: {exc.msg}") from exc
    out = LoadResult()
    for key, rec in _records_from_json(doc, source):
        out.extend(_upstream_record(rec, key, source, path.name, resolver, repo_override))
    return out


def load_hf(spec: str, resolver: _Resolver, repo_override: str | None) -> LoadResult:
    """`hf:NAME[:CONFIG[:SPLIT]]` through datasets.load_dataset (offline when HF_HUB_OFFLINE=1). NAME may be a
    dataset on the hub, a local copy of one (a folder in the hub's layout: data files, and the configs and
    splits its README declares), or one JSON Lines file."""
    import datasets

    parts = spec.removeprefix("hf:").split(":")
    name, config, split = parts[0], (parts[1] if len(parts) > 1 else None), (parts[2] if len(parts) > 2 else "train")
    if Path(name).is_file():
        ds = datasets.load_dataset("json", data_files=name, split=split)
    elif Path(name).is_dir():
        # datasets keys its cache of a local folder by the folder's name and config, not its files: a changed
        # copy (or another copy of the same name) would give the old records, or the old columns, back. Read
        # it afresh each time, into memory, with a cache of its own.
        with tempfile.TemporaryDirectory(prefix="isobench-hf-") as cache:
            ds = list(datasets.load_dataset(name, config, split=split, cache_dir=cache, keep_in_memory=True))
    else:
        ds = datasets.load_dataset(name, config, split=split)
    out = LoadResult()
    for i, rec in enumerate(ds):
        key = str(rec.get("commit_hash") or f"record[{i}]")[:8]
        out.extend(_upstream_record(dict(rec), key, spec, f"{name} {config or ''}", resolver, repo_override))
    return out


def check_sources(result: LoadResult, cache_dir: Path) -> LoadResult:
    """Reach every task's repository and find both commits (one mirror clone or fetch per repository, into
    the cache): a task that cannot run is found now and blamed on the task, not hours later on a GPU. A
    repository that cannot be reached now (no network) is a warning: its tasks are not checked."""
    import git

    from isobench_ray.schema import StageError
    from isobench_ray.workspace import missing_commits, mirror

    by_url: dict[str, list[Task]] = {}
    for task in result.tasks:
        by_url.setdefault(task.repo.url, []).append(task)
    unusable: set[str] = set()
    for url, tasks in by_url.items():
        commits = tuple(dict.fromkeys(c for t in tasks for c in (t.parent_commit, t.human_commit)))
        try:
            path = mirror(url, cache_dir, commits, require=False)
        except StageError as exc:  # the repository does not exist
            for task in tasks:
                result.problems.append(Problem(task.source, task.id, "repo.url", f"{exc.failure_cause.value}: {exc.detail}"))
                unusable.add(task.id)
            continue
        except git.GitCommandError as exc:
            reason = (exc.stderr or str(exc)).strip().splitlines()[-1][:200]
            for task in tasks:
                result.problems.append(Problem(task.source, task.id, "repo.url", f"not checked, {url} cannot be reached now: {reason}", "warning"))
            continue
        missing = set(missing_commits(path, commits))
        for task in tasks:
            for fld, commit in (("parent_commit", task.parent_commit), ("human_commit", task.human_commit)):
                if commit in missing:
                    result.problems.append(Problem(task.source, task.id, fld, f"commit_missing: {url} has no commit {commit}"))
                    unusable.add(task.id)
    result.tasks = [t for t in result.tasks if t.id not in unusable]
    return result


def load_tasks(path: str | Path, repo: str | None = None) -> LoadResult:
    """Load tasks from a file or `hf:` spec. Raises TaskFileError for an unreadable file."""
    resolver = _Resolver(repo if repo and Path(repo).exists() else None)
    spec = str(path)
    if spec.startswith("hf:"):
        return load_hf(spec, resolver, repo)
    p = Path(path)
    if not p.exists():
        raise TaskFileError(f"{spec}: no such file")
    if p.is_dir():
        out = LoadResult()
        for child in sorted(p.glob("*.y*ml")):
            out.extend(load_yaml(child, resolver))
        return out
    if p.suffix in (".yaml", ".yml"):
        return load_yaml(p, resolver)
    if p.suffix in (".json", ".jsonl"):
        return load_upstream(p, resolver, repo)
    raise TaskFileError(f"{spec}: unknown task file type (expected .yaml, .json, .jsonl or hf:NAME)")
