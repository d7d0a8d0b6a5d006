"""`isobench mine --model`: the describe-and-test step (docs/mining.md). For each candidate a model writes a
bottleneck description and a performance test in ISO-Bench's convention; the description must quote no line
the fix adds, the test must pass on the parent commit. What passes becomes a task of the `script` kind in
DIR/tasks.yaml. The model's text is untrusted: never evaluated, only run as a process in a temporary copy of
the parent's tree, with a timeout."""

from __future__ import annotations

import json
import re
import sys
import tarfile
import tempfile
from pathlib import Path

import git
import yaml

from isobench_ray.mine import Candidate, MinedFiles, MineOptions, Progress, Reason, Rejection, added_lines, repo_identity
from isobench_ray.schema.base import slug
from isobench_ray.text import head_and_tail, tail


def leaked_line(description: str, diff: str, min_chars: int = 20) -> str | None:
    """An added line of the diff (min_chars or longer, whitespace evened out) that the description quotes."""
    text = " ".join(description.split())
    for line in added_lines(diff):
        added = " ".join(line.split())
        if len(added) >= min_chars and added in text:
            return added
    return None





class ModelUnavailable(RuntimeError):
    """The model did not answer (after retries): the run stops, the candidates not described yet stay pending."""


PERF_DIR = ".isobench-perf"  # where the `script` kind puts a task's tests in every arm (engines/scripts.py)
PROMPT_DIFF_CHARS = 40_000
DESCRIBE_PROMPT = """You turn a performance commit of {repo} into a benchmark task for coding agents. An agent gets the
repository at the commit's parent and your description, never the commit.

Commit {commit}: {subject}

{message}

Files changed: {files}
Functions changed: {functions}

The diff (the fix: for your eyes only):
```diff
{diff}
```

Reply with exactly two parts.

1. <description>...</description>: what is slow on the parent commit and under which workload, as a user or a
profile sees it: the entry point, the sizes, the symptom, where the time goes. Never the fix, its technique or
its data structures, and no line of the diff.

2. One ```python block: a standalone performance test in ISO-Bench's convention, run from the repository's
root with the repository importable: `python TEST.py [--reference] [--eqcheck] [--prefix P]`. It reads the
environment variables COMMIT_HASH and IMPL_TAG, builds its inputs in `setup()` (fixed seeds, no network, no
downloads), times `experiment(inputs)` (the workload the commit speeds up, through the repository's own API)
with time.perf_counter over several iterations, and prints ONE JSON line with at least "avg_ms" and "p50_ms".
With --reference it stores the experiment's result as JSON in `{{prefix}}_reference.json`; with --eqcheck it
loads that file and exits non-zero when the result differs (floats compared with a tolerance). It must pass on
the parent and on the commit alike, in under a minute."""
_DESCRIPTION = re.compile(r"<description>\s*(.*?)\s*</description>", re.S)
_PYTHON = re.compile(r"```(?:python|py)[ \t]*\n(.*?)```", re.S)


def describe_messages(cand: Candidate) -> list[dict]:
    prompt = DESCRIBE_PROMPT.format(
        repo=cand.repo, commit=cand.commit_hash[:12], subject=cand.commit_subject, message=cand.commit_message,
        files=", ".join(cand.files_changed), functions=", ".join(cand.functions_changed) or "(none found)",
        diff=head_and_tail(cand.diff_text, PROMPT_DIFF_CHARS))
    return [{"role": "user", "content": prompt}]


def parse_reply(text: str) -> tuple[str | None, str | None]:
    """(description, test script) of a model's reply; None for a part it lacks. The script is looked for
    outside the description, which may show code of its own."""
    described = _DESCRIPTION.search(text)
    script = _PYTHON.search(_DESCRIPTION.sub("", text))
    return (described[1].strip() or None if described else None), (script[1].strip() + "\n" if script else None)


def reported_ms(output: str) -> float | None:
    """avg_ms of the last JSON line of a test's output that has one."""
    for line in reversed(output.splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict) and isinstance(value.get("avg_ms"), (int, float)):
                return float(value["avg_ms"])
    return None


def run_on_parent(repo: git.Repo, parent: str, script: str, python: str, timeout_s: float) -> str | None:
    """None when the test passes on the parent commit (--reference, then --eqcheck against itself), else why not.
    The script is the model's text: it is only written to a file and run in a sandbox (bubblewrap where it is
    installed: no network, nothing of the host writable but a temporary copy of the parent's tree), with a
    timeout and an environment that carries none of the caller's keys; whatever it starts goes with it."""
    from isobench_ray.sandbox.base import with_agent
    from isobench_ray.sandbox.local import LocalSandboxes

    sandboxes = with_agent(LocalSandboxes(), programs=[python])
    with tempfile.TemporaryDirectory(prefix="isobench-mine-") as tmp:
        tree, archive = Path(tmp) / "tree", Path(tmp) / "tree.tar"
        with archive.open("wb") as stream:
            repo.archive(stream, treeish=parent, format="tar")
        with tarfile.open(archive) as tar:
            tar.extractall(tree, filter="data")
        test = tree / PERF_DIR / "test_mined.py"
        test.parent.mkdir(parents=True, exist_ok=True)
        test.write_text(script)
        env = {"HOME": tmp, "LANG": "C.UTF-8", "PYTHONPATH": str(tree), "COMMIT_HASH": parent, "IMPL_TAG": "isobench",
               "PYTHONDONTWRITEBYTECODE": "1"}
        sandbox = sandboxes("mine-check", writable=[Path(tmp)], network=False, isolate=sandboxes.can_isolate, env=env)
        try:
            for mode in ("--reference", "--eqcheck"):
                res = sandbox.exec([python, str(test), mode, "--prefix", str(test.parent / "mined")], cwd=tree,
                                   timeout_s=timeout_s, log_path=Path(tmp) / f"check{mode}.log")
                if res.timed_out:
                    return f"{mode}: still running after {timeout_s:.0f} s"
                if res.returncode != 0:
                    return f"{mode}: exit {res.returncode}: {tail(res.output, 8)}"
                if reported_ms(res.output) is None:
                    return f"{mode}: no JSON line with avg_ms: {tail(res.output, 8)}"
        finally:
            sandbox.cleanup()
    return None


def describe_and_test(repo: git.Repo, cand: Candidate, opts: MineOptions) -> Candidate | Rejection:
    """The candidate with its description and test, or why it was rejected. A model that does not answer
    raises ModelUnavailable: the candidate stays pending for the next run."""
    from isobench_ray.llm_client import complete  # litellm only where a model is asked

    try:
        reply = complete(opts.model or "", describe_messages(cand), api_base=opts.api_base)
    except Exception as exc:  # after llm_client's backoff: the endpoint or the key, not this candidate
        raise ModelUnavailable(f"{opts.model} did not answer: {type(exc).__name__}: {str(exc)[:300]}") from None
    description, script = parse_reply(reply.text)

    def reject(reason: Reason, detail: str) -> Rejection:
        return Rejection(commit_hash=cand.commit_hash, commit_subject=cand.commit_subject, reason=reason, detail=detail)

    if not description or not script:
        return reject("bad_reply", "no <description>" if not description else "no ```python block")
    if leaked := leaked_line(description, cand.diff_text):
        return reject("description_leaks_fix", f"quotes the added line {leaked!r}")
    if failure := run_on_parent(repo, cand.parent_commit, script, opts.python, opts.test_timeout_s):
        return reject("test_fails_on_parent", failure)
    return cand.model_copy(update={"description": description + "\n", "test_script": script})


def describe_pending(repo: git.Repo, files: MinedFiles, opts: MineOptions, progress: Progress) -> None:
    """Describe and test every candidate without a description, the candidates' file rewritten after each one
    (a stopped run loses at most the one it was on); then DIR/tasks.yaml from every described candidate."""
    candidates = files.read_candidates()
    pending = [c for c in candidates if c.description is None]
    for cand in progress(pending, total=len(pending), desc="describe", unit="candidate"):
        result = describe_and_test(repo, cand, opts)
        candidates = [result if c.commit_hash == cand.commit_hash else c for c in candidates]
        files.replace_candidates([c for c in candidates if isinstance(c, Candidate)])
        if isinstance(result, Rejection):
            files.add(result)
    described = [c for c in candidates if isinstance(c, Candidate) and c.description and c.test_script]
    if described:
        write_tasks(repo, described, files.tasks, engine_python(opts.python))


def engine_python(python: str) -> str | None:
    """The repository's `python:` in the task file: the interpreter the tests were checked with, unless it is
    the harness's own (the default, which a run uses anyway)."""
    return None if Path(python).resolve() == Path(sys.executable).resolve() else str(Path(python).absolute())


def write_tasks(repo: git.Repo, candidates: list[Candidate], path: Path, python: str | None = None) -> None:
    name, url, _ = repo_identity(repo)
    path.write_text(tasks_yaml(candidates, name, url, python))


def task_id(repo: git.Repo, cand: Candidate) -> str:
    """The id tasks.yaml gives a candidate's task: the repository's name and the commit's first 12 digits."""
    return f"{slug(repo_identity(repo)[0].split('/')[-1])}-{cand.commit_hash[:12]}"


class _BlockDumper(yaml.SafeDumper):
    """Task files as people write them: multi-line text (descriptions, scripts) as literal blocks, lists
    indented under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False):
        return super().increase_indent(flow, False)


_BlockDumper.add_representer(str, lambda dumper, value: dumper.represent_scalar(
    "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None))


def tasks_yaml(candidates: list[Candidate], name: str, url: str, python: str | None = None) -> str:
    """A task file of the `script` kind, one task per described candidate, the repository by its URL or path
    and, when given, the interpreter of its environment (`python:`, what every arm runs the tests with)."""
    key = slug(name.split("/")[-1])
    tasks = [{"id": f"{key}-{c.commit_hash[:12]}", "repo": key, "human_commit": c.commit_hash, "parent_commit": c.parent_commit,
              "commit_date": c.commit_date, "description": c.description,
              "benchmark": {"kind": "script", "scripts": [{"name": f"test_{c.commit_hash[:12]}.py", "text": c.test_script}]}}
             for c in candidates]
    doc = {"suite": "mined", "repos": {key: {"url": url, "engine": "generic", **({"python": python} if python else {})}},
           "tasks": tasks}
    return ("# Written by `isobench mine`: candidate tasks, each description and test written by a model and checked\n"
            "# (no line of the fix quoted, the test passes on the parent commit). Read them before running them.\n"
            + yaml.dump(doc, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=1000))
