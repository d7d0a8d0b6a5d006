"""`isobench mine`: a repository's history -> candidate performance tasks (docs/mining.md).

Find: one `git log --numstat` reads every commit's message and files; what the log alone decides (root,
merge, revert, paths, a version subject, no source, size) is decided there, the other commits get their
patches from a few batched `git log -p` calls, and pure scoring (message and diff -> score and the words
that matched) keeps the performance commits. Here too: the output folder, which a later run resumes.
Describe and test (with a model) is mine_describe.py."""

from __future__ import annotations

import ast
import fnmatch
import json
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Literal

import git

from isobench_ray.schema.base import Frozen

Reason = Literal["root", "merge", "revert", "outside_paths", "version_bump", "no_source_change", "too_large",
                 "not_a_perf_commit", "bad_reply", "description_leaks_fix", "test_fails_on_parent",
                 # --verify (mine_verify.py)
                 "test_fails_on_commit", "not_equivalent", "no_gain", "too_noisy", "not_measured"]
Progress = Callable[..., Iterable]  # tqdm's shape: progress(iterable, total=..., desc=...)


class Stats(Frozen):
    num_files: int
    num_hunks: int
    num_edited_lines: int
    num_test_files: int
    num_non_test_files: int


class Candidate(Frozen):
    """A kept commit in the fields of ISO-Bench's released dataset, what its scoring matched and, once
    described, the task's description and performance test."""

    commit_hash: str
    parent_commit: str
    commit_date: str  # the committer date, ISO 8601 with its offset (what --since/--until filter on)
    commit_subject: str
    commit_message: str
    files_changed: tuple[str, ...]
    functions_changed: tuple[str, ...]  # path:Class.method of every Python function whose lines the diff touches
    stats: Stats
    diff_text: str
    pr_url: str | None
    repo: str
    perf_signal: tuple[str, ...]
    perf_score: int
    description: str | None = None
    test_script: str | None = None
    verified: str | None = None  # --verify: how the commit cleared the strict rule against its parent


class Rejection(Frozen):
    commit_hash: str
    commit_subject: str
    reason: Reason
    detail: str


@dataclass(frozen=True)
class MineOptions:
    repo: Path
    out: Path
    since: str | None = None
    until: str | None = None
    paths: tuple[str, ...] = ()  # fnmatch globs over paths from the root (`*` crosses folders)
    limit: int | None = None  # commits looked at in this run (those already mined not counted)
    max_lines: int = 2000
    model: str | None = None
    api_base: str | None = None
    test_timeout_s: float = 600.0
    python: str = sys.executable  # runs the generated tests: it needs the mined repository's dependencies


@dataclass(frozen=True)
class LogEntry:
    """One commit as `git log --numstat` tells it; (added, deleted, path) per file, 0 lines for a binary file."""

    hash: str
    parents: tuple[str, ...]
    date: str
    message: str
    numstat: tuple[tuple[int, int, str], ...]

    @property
    def subject(self) -> str:
        return self.message.split("\n", 1)[0].strip()

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(p for _, _, p in self.numstat)


# ---------------------------------------------------------------- scoring: pure

STRONG, WEAK, KEEP_SCORE = 3, 1, 3  # a strong word anywhere keeps a commit; weak ones need company
MESSAGE_SIGNALS = tuple((word, weight, re.compile(pattern, re.I)) for word, weight, pattern in (
    ("[Perf]", STRONG, r"\[perf\]"), ("speed up", STRONG, r"\bspeed(?:s|ing)?[ -]?ups?\b"),
    ("faster", STRONG, r"\bfaster\b"), ("optimize", STRONG, r"\boptimi[sz]"), ("performance", STRONG, r"\bperformance\b"),
    ("perf", STRONG, r"\bperf\b(?!\])"), ("latency", STRONG, r"\blatenc"), ("throughput", STRONG, r"\bthroughput\b"),
    ("vectorize", STRONG, r"\bvectori[sz]"), ("avoid copy", STRONG, r"\bavoid\w*\b[\w\s-]{0,20}?\bcop(?:y|ies|ying)\b"),
    ("reduce overhead", STRONG, r"\breduc\w*\b[\w\s-]{0,20}?\boverhead"), ("slow", STRONG, r"\bslow(?:s|er|ed|ness|down)?\b"),
    ("bottleneck", STRONG, r"\bbottleneck"), ("O(...)", STRONG, r"(?<![\w.])O\([^()\n]{1,40}\)"),
    ("cache", WEAK, r"\bcach(?:e|es|ed|ing)\b"), ("overhead", WEAK, r"\boverhead\b"), ("efficient", WEAK, r"\befficien"),
    ("fast", WEAK, r"\bfast(?:est)?\b"), ("dominates", WEAK, r"\bdominat"), ("in place", WEAK, r"\bin[- ]?place\b"),
    ("fuse", WEAK, r"\bfus(?:e|ed|es|ion)\b"), ("hot path", WEAK, r"\bhot[- ]?path\b")))
DIFF_SIGNALS = tuple((word, WEAK, re.compile(pattern)) for word, pattern in (
    ("lru_cache", r"\blru_cache\b|\bfunctools\.cache\b|@cache\b"), ("__slots__", r"\b__slots__\b"),
    ("compile", r"\btorch\.compile\b|\btorch\.jit\.script\b|@(?:numba\.)?njit\b"), ("cuda graph", r"(?i)\bcuda[_ ]?graph")))

_VERSION_SUBJECT = re.compile(r"^(?:\[[^\]]*\]\s*)*(?:(?:bump|update|set|release)\b.{0,40}\bversion\b"
                              r"|(?:bump|release)\s+v?\d+\.\d+|v?\d+\.\d+(?:\.\d+)*$)", re.I)
_VERSION_LINE = re.compile(r"(?i)version.*\d+\.\d+|^v?\d+\.\d+(?:\.\d+)*\S*$")
_REVERT = re.compile(r"^(?:\[[^\]]*\]\s*)*revert\b", re.I)
_TEST_PATH = re.compile(r"(?:^|/)(?:tests?|testing)/|(?:^|/)test_[^/]*$|_test\.\w+$|(?:^|/)conftest\.py$")
_CI_PATH = re.compile(r"^(?:\.github|\.buildkite|\.circleci|\.gitlab|\.ci)/|^\.gitlab-ci\.yml$|(?:^|/)Jenkinsfile$")
_DOCS_PATH = re.compile(r"^docs?/|\.(?:md|rst|txt|adoc|png|jpe?g|gif|svg|ipynb)$|(?:^|/)(?:LICENSE|README|CHANGELOG|NOTICE)[^/]*$")
SOURCE_SUFFIXES = {".py", ".pyx", ".pxd", ".c", ".cc", ".cpp", ".cxx", ".h", ".hh", ".hpp", ".cu", ".cuh", ".rs", ".go",
                   ".java", ".js", ".ts", ".jl", ".zig", ".metal", ".cl", ".mojo", ".s", ".S"}


def kind_of(path: str) -> str:
    """tests, CI, docs, source or other: what no_source_change and the stats count."""
    if _TEST_PATH.search(path):
        return "tests"
    if _CI_PATH.search(path):
        return "CI"
    if _DOCS_PATH.search(path):
        return "docs"
    return "source" if Path(path).suffix in SOURCE_SUFFIXES else "other"


def added_lines(diff: str) -> list[str]:
    return [line[1:] for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]


def edited_lines(diff: str) -> list[str]:
    return [line[1:] for line in diff.splitlines() if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))]


def perf_signal(subject: str, message: str, diff: str) -> tuple[int, tuple[str, ...]]:
    """The performance score and the words that matched: a word in the subject counts twice, the diff's added
    lines can add weak signals (a cache decorator, __slots__, a compiler)."""
    body = message[len(subject):] if message.startswith(subject) else message
    score, words = 0, []
    for word, weight, pattern in MESSAGE_SIGNALS:
        in_subject = bool(pattern.search(subject))
        if in_subject or pattern.search(body):
            score, words = score + weight * (2 if in_subject else 1), [*words, word]
    added = "\n".join(added_lines(diff))
    for word, weight, pattern in DIFF_SIGNALS:
        if pattern.search(added):
            score, words = score + weight, [*words, word]
    return score, tuple(words)


def reject_early(entry: LogEntry, paths: tuple[str, ...], max_lines: int) -> tuple[Reason, str] | None:
    """What the log alone decides, before any patch is read."""
    if not entry.parents:
        return "root", "the first commit: no parent to measure against"
    if len(entry.parents) > 1:
        return "merge", f"{len(entry.parents)} parents"
    if _REVERT.search(entry.subject):
        return "revert", "the subject starts with Revert"
    if paths and not any(fnmatch.fnmatchcase(p, glob) for p in entry.paths for glob in paths):
        return "outside_paths", f"no changed file matches {', '.join(paths)}"
    if _VERSION_SUBJECT.search(entry.subject):
        return "version_bump", "the subject names a version"
    kinds = Counter(kind_of(p) for p in entry.paths)
    if not kinds["source"]:
        return "no_source_change", "only " + (", ".join(f"{k} ({n})" for k, n in sorted(kinds.items())) or "no file")
    edited = sum(a + d for a, d, _ in entry.numstat)
    if edited > max_lines:
        return "too_large", f"{edited} edited lines (over {max_lines})"
    return None


def reject_by_diff(diff: str, score: int, words: tuple[str, ...]) -> tuple[Reason, str] | None:
    edited = [line.strip() for line in edited_lines(diff) if line.strip()]
    if edited and all(_VERSION_LINE.search(line) for line in edited):
        return "version_bump", "every edited line is a version string"
    if score < KEEP_SCORE:
        return "not_a_perf_commit", f"score {score} (keeps at {KEEP_SCORE})" + (f": {', '.join(words)}" if words else "")
    return None


# ---------------------------------------------------------------- what a diff touches: pure

_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")


def _diff_path(text: str) -> str | None:
    text = text.rstrip("\t")
    if text == "/dev/null":
        return None
    if text.startswith('"'):  # git quotes a path with special characters, its bytes as octal escapes
        text = text[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")
    return text[2:]  # a/ or b/


def touched_lines(diff: str) -> list[tuple[str | None, str | None, set[int], set[int]]]:
    """Per file: (old path, new path, lines added in the new version, lines removed from the old one)."""
    files: list[tuple[str | None, str | None, set[int], set[int]]] = []
    header, old_path, old_no, new_no = False, None, 0, 0
    for line in diff.splitlines():
        if line.startswith("diff --git "):
            header = True
        elif header and line.startswith("--- "):
            old_path = _diff_path(line[4:])
        elif header and line.startswith("+++ "):
            files.append((old_path, _diff_path(line[4:]), set(), set()))
        elif (hunk := _HUNK.match(line)) and files:
            header, old_no, new_no = False, int(hunk[1]), int(hunk[2])
        elif not header and files and line.startswith("+"):
            files[-1][2].add(new_no)
            new_no += 1
        elif not header and files and line.startswith("-"):
            files[-1][3].add(old_no)
            old_no += 1
        elif not header and line.startswith(" "):
            old_no, new_no = old_no + 1, new_no + 1
    return files


def functions_at(source: str, lines: set[int]) -> set[str]:
    """The innermost function or method around each line (decorators included), named through its classes
    and enclosing functions: `Class.method`."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    spans: list[tuple[int, int, str]] = []

    def walk(statements: list, prefix: str) -> None:  # a def is a statement: expressions need no visit
        for node in statements:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                spans.append((start, node.end_lineno or node.lineno, prefix + node.name))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                walk(node.body, f"{prefix}{node.name}.")
                continue
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):  # if, for, with, try, match
                if isinstance(children := getattr(node, field, None), list):
                    walk(children, prefix)

    walk(tree.body, "")
    found = set()
    for line in lines:
        around = [span for span in spans if span[0] <= line <= span[1]]
        if around:
            found.add(max(around)[2])  # the latest start is the innermost
    return found


# ---------------------------------------------------------------- find: git

_LOG_FORMAT = "%x1e%H%x1f%P%x1f%cI%x1f%B%x1f"
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_PATCH_START = re.compile(r"(?:^|\n)\x1e(?=[0-9a-f]{40})")


def _git_log(repo: git.Repo, *args: str) -> str:
    # bytes, decoded here: a patch of a file in another encoding must not stop the run
    return repo.git.log(*args, stdout_as_string=False).decode("utf-8", "replace")


def parse_log(text: str) -> list[LogEntry]:
    entries = []
    for record in _PATCH_START.split(text)[1:]:
        commit, parents, date, rest = record.split("\x1f", 3)
        message, numstat = rest.rsplit("\x1f", 1)
        rows = []
        for line in numstat.strip("\n").splitlines():
            added, deleted, path = line.split("\t", 2)
            rows.append((int(added) if added.isdigit() else 0, int(deleted) if deleted.isdigit() else 0,
                         _diff_path("b/" + path if not path.startswith('"') else '"b/' + path[1:])))
        entries.append(LogEntry(commit, tuple(parents.split()), date, message.strip(), tuple(rows)))
    return entries


def commits_to_mine(repo: git.Repo, opts: MineOptions, done: set[str]) -> list[LogEntry]:
    """HEAD's first-parent history in the date range, newest first, less the commits already mined, at most --limit."""
    args = ["--first-parent", "--no-renames", "--numstat", f"--format={_LOG_FORMAT}"]
    # a bare date is a whole day: git would read it as that day at the current time of day
    since = f"{opts.since}T00:00:00" if opts.since and _DAY.fullmatch(opts.since) else opts.since
    until = f"{opts.until}T23:59:59" if opts.until and _DAY.fullmatch(opts.until) else opts.until
    args += [f"--since={since}"] * bool(since) + [f"--until={until}"] * bool(until)
    if opts.limit is not None:  # enough to find `limit` new ones among those already mined
        args.append(f"--max-count={opts.limit + len(done)}")
    entries = [e for e in parse_log(_git_log(repo, *args, "HEAD")) if e.hash not in done]
    return entries[:opts.limit]


def read_patches(repo: git.Repo, hashes: list[str]) -> dict[str, str]:
    """Each commit's patch against its first parent, from one `git log -p` call."""
    if not hashes:
        return {}
    text = _git_log(repo, "--no-walk=unsorted", "--no-renames", "-p", "--no-color", "--no-ext-diff",
                    "--src-prefix=a/", "--dst-prefix=b/", "--format=%x1e%H", *hashes)
    patches = {}
    for record in _PATCH_START.split(text)[1:]:
        commit, _, diff = record.partition("\n")
        patches[commit] = diff.strip("\n") + "\n"
    return patches


def repo_identity(repo: git.Repo) -> tuple[str, str, str | None]:
    """(name, url, GitHub base URL or None): owner/name and its URL for a GitHub remote (origin first), else the
    folder's name and its absolute path."""
    remotes = sorted(repo.remotes, key=lambda r: r.name != "origin")
    for remote in remotes:
        found = re.search(r"github\.com[:/]([\w.-]+)/([\w.-]+?)(?:\.git)?/?$", remote.url)
        if found:
            return f"{found[1]}/{found[2]}", f"https://github.com/{found[1]}/{found[2]}", f"https://github.com/{found[1]}/{found[2]}"
    root = Path(repo.working_tree_dir or repo.git_dir).resolve()
    return root.name, str(root), None


def _blob(repo: git.Repo, commit: str, path: str) -> str:
    try:  # GitPython's persistent `git cat-file --batch`: no process per file, no tree walked in Python
        return repo.git.get_object_data(f"{commit}:{path}")[3].decode("utf-8", "replace")
    except ValueError:  # no such file in that commit
        return ""


def functions_changed(repo: git.Repo, entry: LogEntry, diff: str) -> tuple[str, ...]:
    """Added lines are looked up in the commit's version of each .py file, removed lines in the parent's."""
    names = set()
    for old_path, new_path, added, removed in touched_lines(diff):
        for commit, path, lines in ((entry.hash, new_path, added), (entry.parents[0], old_path, removed)):
            if path and path.endswith(".py") and lines:
                names |= {f"{path}:{name}" for name in functions_at(_blob(repo, commit, path), lines)}
    return tuple(sorted(names))


def candidate(repo: git.Repo, entry: LogEntry, diff: str, signal: tuple[int, tuple[str, ...]],
              identity: tuple[str, str, str | None]) -> Candidate:
    tests = sum(kind_of(p) == "tests" for p in entry.paths)
    pr = re.findall(r"\(#(\d+)\)", entry.message)
    return Candidate(
        commit_hash=entry.hash, parent_commit=entry.parents[0], commit_date=entry.date, commit_subject=entry.subject,
        commit_message=entry.message, files_changed=entry.paths, functions_changed=functions_changed(repo, entry, diff),
        stats=Stats(num_files=len(entry.paths), num_hunks=sum(line.startswith("@@ ") for line in diff.splitlines()),
                    num_edited_lines=sum(a + d for a, d, _ in entry.numstat), num_test_files=tests,
                    num_non_test_files=len(entry.paths) - tests),
        diff_text=diff, pr_url=f"{identity[2]}/pull/{pr[0]}" if pr and identity[2] else None, repo=identity[0],
        perf_signal=signal[1], perf_score=signal[0])


def find(repo: git.Repo, entries: list[LogEntry], opts: MineOptions, batch: int = 200) -> Iterator[Candidate | Rejection]:
    """Keep or reject each commit, in the given order; patches are read a batch at a time, and only for the
    commits the log did not already decide."""
    identity = repo_identity(repo)
    for start in range(0, len(entries), batch):
        chunk = entries[start:start + batch]
        early = {e.hash: reject_early(e, opts.paths, opts.max_lines) for e in chunk}
        patches = read_patches(repo, [h for h, verdict in early.items() if verdict is None])
        for entry in chunk:
            diff = patches.get(entry.hash, "")
            signal = perf_signal(entry.subject, entry.message, diff)
            verdict = early[entry.hash] or reject_by_diff(diff, *signal)
            if verdict:
                yield Rejection(commit_hash=entry.hash, commit_subject=entry.subject, reason=verdict[0], detail=verdict[1])
            else:
                yield candidate(repo, entry, diff, signal, identity)



# ---------------------------------------------------------------- the output folder

class MinedFiles:
    """DIR/candidates.jsonl and DIR/rejected.jsonl, a line appended for each commit as it is decided (a run that
    stops keeps what it decided, and the next skips it), and DIR/tasks.yaml."""

    def __init__(self, out: Path):
        out.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.candidates, self.rejected, self.tasks = out / "candidates.jsonl", out / "rejected.jsonl", out / "tasks.yaml"
        for path in (self.candidates, self.rejected):
            if path.exists() and path.stat().st_size:
                with path.open("rb+") as stream:
                    stream.seek(-1, os.SEEK_END)
                    if stream.read(1) != b"\n":  # a line cut short by a stopped run: the next starts on its own
                        stream.write(b"\n")

    @staticmethod
    def _rows(path: Path) -> list[dict]:
        rows = []
        for line in path.read_text().splitlines() if path.exists() else ():
            try:
                rows.append(json.loads(line))
            except ValueError:  # cut short by a stopped run: that commit is looked at again
                continue
        return rows

    def done(self) -> set[str]:
        return {row.get("commit_hash", "") for path in (self.candidates, self.rejected) for row in self._rows(path)}

    def read_candidates(self) -> list[Candidate]:
        return [Candidate.model_validate(row) for row in self._rows(self.candidates)]

    def read_rejections(self) -> list[Rejection]:
        return [Rejection.model_validate(row) for row in self._rows(self.rejected)]

    def add(self, decision: Candidate | Rejection) -> None:
        with (self.candidates if isinstance(decision, Candidate) else self.rejected).open("a") as stream:
            stream.write(decision.model_dump_json() + "\n")

    def replace_candidates(self, candidates: list[Candidate]) -> None:
        temporary = self.candidates.with_name(self.candidates.name + ".tmp")
        temporary.write_text("".join(c.model_dump_json() + "\n" for c in candidates))
        os.replace(temporary, self.candidates)

    def summary(self) -> dict[str, int]:
        """The folder's totals: kept (and how many of them are described, and verified), rejected by reason."""
        kept = self.read_candidates()
        rejected = Counter(r.reason for r in self.read_rejections())
        return {"kept": len(kept), "described": sum(c.description is not None for c in kept),
                "verified": sum(c.verified is not None for c in kept), **dict(sorted(rejected.items()))}


def mine(opts: MineOptions, progress: Progress = lambda items, **_: items) -> int:
    """Find; then, with a model, describe and test every candidate of the folder that has no description yet.
    Returns how many commits this run looked at."""
    repo = git.Repo(opts.repo)
    files = MinedFiles(opts.out)
    entries = commits_to_mine(repo, opts, files.done())
    for decision in progress(find(repo, entries, opts), total=len(entries), desc="find", unit="commit"):
        files.add(decision)
    if opts.model:
        from isobench_ray.mine_describe import describe_pending  # litellm only where a model is asked

        describe_pending(repo, files, opts, progress)
    return len(entries)
