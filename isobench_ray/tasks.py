"""Loading tasks from every format we accept, and reporting every problem with file, task id and field.

Formats (see tasks/README.md):
- our YAML (`repos:` + `tasks:`);
- the upstream ISO-Bench runner mapping: a JSON object keyed by short commit (`human_commit_full` or
  `commit_full`, `parent_commit`, `model`, `perf_command`, `has_serving/...` or `benchmark_mode`);
- the upstream Hugging Face dataset record (`commit_hash`, `perf_command`, `models`, ...) as JSON/JSONL
  files, or a dataset loaded with `datasets.load_dataset` (`hf:NAME[:CONFIG[:SPLIT]]` or a local file).

Each entry is made a Task, and checked, in task_build.py. A task with an error-severity problem is not
returned; the problems say why.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import ValidationError

from isobench_ray.schema import RepoSpec, Task, is_safe_name
from isobench_ray.task_build import (
    KNOWN_REPOS,
    LoadResult,
    Problem,
    Resolver,
    TaskFileError,
    build_task,
    default_description,
    repo_spec,
)

__all__ = ["KNOWN_REPOS", "LoadResult", "Problem", "TaskFileError", "check_sources", "default_description", "load_hf",
           "load_tasks", "load_upstream", "load_yaml", "repo_spec"]

# upstream `benchmark_mode` values; `standalone` means an offline script, the command says which
_MODES = {"serving": "serving", "standalone": None, "prefix_caching": "latency", "latency": "latency", "throughput": "throughput"}


# ---------------------------------------------------------------- our YAML

_YAML_FIELDS = {"id", "repo", "human_commit", "parent_commit", "description", "model", "benchmark", "normalizations",
                "commit_date"}


def _yaml_repos(doc: dict, path: Path, problems: list[Problem]) -> dict[str, RepoSpec]:
    """The file's `repos:` entries, their paths (url, python, dockerfile) relative to the file."""
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
                problems.append(Problem(str(path), f"repos.{name}", ".".join(map(str, err["loc"])), err["msg"]))
    return repos


def _yaml_entry(raw: Any, i: int, source: str, repos: dict[str, RepoSpec], seen: set[str],
                problems: list[Problem]) -> tuple[str, RepoSpec] | None:
    """A task entry's id and repository, where its shape lets it be built (None: the problem is recorded)."""
    if not isinstance(raw, dict):
        problems.append(Problem(source, f"tasks[{i}]", "task", "expected a mapping"))
        return None
    task_id = str(raw.get("id") or f"tasks[{i}]")
    if "id" not in raw or not is_safe_name(task_id):
        problems.append(Problem(source, task_id, "id", "missing, or not made of letters, digits, '-', '_', '.' "
                                                       "(no '..', 200 at most)"))
        return None
    if task_id in seen:
        problems.append(Problem(source, task_id, "id", "duplicate task id"))
        return None
    seen.add(task_id)
    repo_name = raw.get("repo")
    repo = repos.get(repo_name) or (repo_spec(repo_name, {}) if repo_name in KNOWN_REPOS else None)
    if repo is None:
        problems.append(Problem(source, task_id, "repo", f"unknown repo {repo_name!r}; define it under `repos:`"))
        return None
    unknown = set(raw) - _YAML_FIELDS
    if unknown:
        problems.append(Problem(source, task_id, ",".join(sorted(unknown)), "unknown field(s)"))
        return None
    if not isinstance(raw.get("benchmark"), dict):
        problems.append(Problem(source, task_id, "benchmark", "missing `benchmark:` mapping with kind and command"))
        return None
    return task_id, repo


def _yaml_kind(raw: dict[str, Any], source: str, task_id: str, problems: list[Problem]) -> str | None:
    """The declared benchmark kind, after the entry's normalization notes (None: a problem is recorded)."""
    # what the file's author changed in an upstream record: said on every validation, never silent
    notes = raw.get("normalizations") or []
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        problems.append(Problem(source, task_id, "normalizations", "expected a list of strings"))
        return None
    for note in notes:
        problems.append(Problem(source, task_id, "normalized", note, "warning"))
    kind = raw["benchmark"].get("kind")
    if kind not in ("serving", "latency", "throughput", "script"):
        problems.append(Problem(source, task_id, "benchmark.kind",
                                f"unknown benchmark kind {kind!r}: serving, latency, throughput or script"))
        return None
    return kind


def load_yaml(path: Path, resolver: Resolver) -> LoadResult:
    source = str(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise TaskFileError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("tasks"), list):
        raise TaskFileError(f"{source}: expected a mapping with a `tasks:` list (see tasks/README.md)")
    out = LoadResult(records=len(doc["tasks"]))
    repos = _yaml_repos(doc, path, out.problems)
    seen: set[str] = set()
    for i, raw in enumerate(doc["tasks"]):
        entry = _yaml_entry(raw, i, source, repos, seen, out.problems)
        kind = entry and _yaml_kind(raw, source, entry[0], out.problems)
        if entry and kind:
            task = build_task(source, entry[0], raw, entry[1], out.problems, resolver, kind)
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


def _listed(value: Any) -> list:
    """A list field as the parquet release stores it too: a string holding a JSON (or Python) list."""
    if isinstance(value, str) and value.strip().startswith("["):
        import ast

        try:
            return list(json.loads(value))
        except json.JSONDecodeError:
            try:
                return list(ast.literal_eval(value))
            except (ValueError, SyntaxError):
                return [value]
    return list(value) if isinstance(value, (list, tuple)) else ([value] if value else [])


def _convention(text: str) -> str:
    """GSO's tests take the result file as their first argument and a --file_prefix; ISO-Bench's a --prefix."""
    return "gso" if "file_prefix" in text else "iso"


def _tests_of(rec: dict[str, Any], key: str) -> list[dict] | None:
    """The performance tests a record carries (None: none): the released dataset's `test_script`, or the
    canonical records' `efficiency_test` list."""
    if isinstance(rec.get("test_script"), str) and rec["test_script"].strip():
        return [{"name": f"test_{key[:40]}.py", "text": rec["test_script"], "convention": _convention(rec["test_script"])}]
    tests = [t for t in _listed(rec.get("efficiency_test")) if isinstance(t, str) and t.strip()]
    if tests:
        return [{"name": f"efficiency_test_{i}.py", "text": t, "convention": _convention(t)} for i, t in enumerate(tests)]
    return None


def _test_record(rec: dict[str, Any], key: str, source: str, resolver: Resolver, repo_override: str | None,
                 tests: list[dict]) -> LoadResult:
    """A record that carries performance tests: a `script` task (the released dataset: `commit_hash`, its parent
    `commit_hash^`; the canonical records: `base_commit`, `head_commit`)."""
    out = LoadResult(records=1)
    human = rec.get("head_commit") or rec.get("commit_hash")
    repo = _repo_for(str(rec.get("repo") or source), rec.get("perf_command"), repo_override)
    models = _listed(rec.get("models"))
    raw = {"human_commit": human, "parent_commit": rec.get("base_commit") or rec.get("parent_commit"),
           "model": rec.get("model") or (models[0] if models else None),
           "commit_date": rec.get("commit_date") or rec.get("created_at"),
           "benchmark": {"kind": "script", "scripts": tests}}
    task = build_task(source, key, raw, repo, out.problems, resolver, "script")
    if task:
        out.tasks.append(task)
    return out


def _upstream_record(rec: dict[str, Any], key: str, source: str, name_hint: str, resolver: Resolver,
                     repo_override: str | None) -> LoadResult:
    tests = _tests_of(rec, key) if "benchmark_mode" not in rec else None
    if tests:
        return _test_record(rec, key, source, resolver, repo_override, tests)
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
    task = build_task(source, key, raw, repo, out.problems, resolver, kind)
    if task:
        out.tasks.append(task)
    return out


def _records_from_json(doc: Any, source: str) -> Iterable[tuple[str, dict[str, Any]]]:
    if isinstance(doc, dict) and all(isinstance(v, dict) for v in doc.values()):
        return doc.items()  # runner mapping keyed by short commit
    if isinstance(doc, list) and all(isinstance(v, dict) for v in doc):
        return ((str(r.get("instance_id") or "")[:120] or str(r.get("commit_hash") or r.get("human_commit_full")
                 or f"record[{i}]")[:8], r) for i, r in enumerate(doc))
    raise TaskFileError(f"{source}: expected a JSON object of records keyed by commit, or a list of records")


def load_upstream(path: Path, resolver: Resolver, repo_override: str | None) -> LoadResult:
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


def load_hf(spec: str, resolver: Resolver, repo_override: str | None) -> LoadResult:
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
        key = str(rec.get("instance_id") or "")[:120] or str(rec.get("commit_hash") or f"record[{i}]")[:8]
        out.extend(_upstream_record(dict(rec), key, spec, f"{name} {config or ''}", resolver, repo_override))
    return out


def git_reason(exc: Exception) -> str:
    """What git said went wrong, in one line (GitPython quotes its stderr: `stderr: 'fatal: ...'`)."""
    text = getattr(exc, "stderr", None) or str(exc)
    lines = [line.strip().strip("'").strip() for line in text.splitlines()]
    lines = [line.removeprefix("stderr:").strip().strip("'") for line in lines if line and line not in ("'", "stderr:")]
    fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
    return ((fatal or lines or ["git failed"])[-1])[:200]


def check_sources(result: LoadResult, cache_dir: Path, for_run: bool = False) -> LoadResult:
    """Reach every task's repository and find both commits (one mirror clone or fetch per repository, into
    the cache): a task that cannot run is found now and blamed on the task, not hours later on a GPU. A
    repository that cannot be reached now (no network) is a warning for `tasks validate` (its tasks are not
    checked) and an error for a run (`for_run`), which would otherwise record every attempt of it as an
    infrastructure error, again on every rerun."""
    import git

    from isobench_ray.schema import StageError
    from isobench_ray.workspace import mirror, missing_commits

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
            reason = git_reason(exc)
            for task in tasks:
                if for_run:
                    result.problems.append(Problem(task.source, task.id, "repo.url", f"{url} cannot be reached now: "
                                                   f"{reason} (fix the URL or the network, or leave the task out)"))
                    unusable.add(task.id)
                else:
                    result.problems.append(Problem(task.source, task.id, "repo.url",
                                                   f"not checked, {url} cannot be reached now: {reason}", "warning"))
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
    """Load tasks from a file, a folder of YAML files or an `hf:` spec. Raises TaskFileError for an unreadable
    file, or one that holds no task record at all (an empty file, `{}`, `[]`: a mistake, never an empty run)."""
    result = _load(path, repo)
    if result.records == 0:
        raise TaskFileError(f"{path}: no task records in it (an empty file, {{}} or []): nothing to run")
    return result


def _load(path: str | Path, repo: str | None) -> LoadResult:
    resolver = Resolver(repo if repo and Path(repo).exists() else None)
    spec = str(path)
    if spec.startswith("hf:"):
        return load_hf(spec, resolver, repo)
    p = Path(path)
    if not p.exists():
        raise TaskFileError(f"{spec}: no such file")
    if p.is_dir():
        return _load_folder(p, resolver)
    if p.suffix in (".yaml", ".yml"):
        return load_yaml(p, resolver)
    if p.suffix in (".json", ".jsonl"):
        return load_upstream(p, resolver, repo)
    raise TaskFileError(f"{spec}: unknown task file type (expected .yaml, .json, .jsonl or hf:NAME)")


def _load_folder(folder: Path, resolver: Resolver) -> LoadResult:
    """Every YAML file of a folder; a task id that an earlier file (by name) already has is an error, never a
    second task of the same name."""
    out, first = LoadResult(), {}
    for child in sorted(folder.glob("*.y*ml")):
        part = load_yaml(child, resolver)
        for task in list(part.tasks):
            if task.id in first:
                part.tasks.remove(task)
                part.problems.append(Problem(str(child), task.id, "id", f"duplicate task id: {first[task.id]} has it too"))
            else:
                first[task.id] = str(child)
        out.extend(part)
    return out
