"""`isobench probe-memory TASKS --model M`: has a model seen the fix? It is asked to reproduce each task's human
diff from the repository's name and the commit's subject alone, and its answer is compared with the diff
(docs/mining.md, "Contamination"). A model that writes back the fix's own lines has memorised it, and its
score on that task says little about the agent.

Two numbers per task, both pure (`overlap`): `line_recall`, the share of the diff's added lines (whitespace
evened out, 8 characters or more) that appear among the answer's lines, and `similarity`, difflib's ratio
between the added lines and the answer's (at most 20,000 characters of each). The model's text is only
compared, never run."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Iterator

import git

from isobench_ray.mine import added_lines
from isobench_ray.schema import Task
from isobench_ray.schema.base import Frozen
from isobench_ray.workspace import diff_between, mirror

MIN_CHARS, MAX_CHARS = 8, 20_000
_FENCE = re.compile(r"```(?:diff|patch|python)?\n(.*?)```", re.S)


class MemoryProbe(Frozen):
    task_id: str
    model: str
    human_commit: str
    subject: str
    line_recall: float  # the diff's added lines found in the answer, as a share of them
    similarity: float  # difflib's ratio between the added lines and the answer's lines
    diff_lines: int
    answer: str


def probe_messages(repo: str, subject: str) -> list[dict]:
    return [{"role": "user", "content": (
        f"In the {repo} repository, the commit with the subject\n\n    {subject}\n\nchanged some code. Write that "
        "commit's diff as a unified diff (```diff), as exactly as you can recall it. If you do not know it, give "
        "your best guess of the change.")}]


def _norm(line: str) -> str:
    return " ".join(line.split())


def answer_lines(answer: str) -> list[str]:
    """The lines a reply proposes: the added lines of its fenced blocks (all their lines when a block is not a
    diff), else of the whole reply."""
    blocks = _FENCE.findall(answer) or [answer]
    lines = []
    for block in blocks:
        added = added_lines(block)
        lines += added if added else block.splitlines()
    return lines


def overlap(diff: str, answer: str) -> tuple[float, float, int]:
    """(line_recall, similarity, the diff's added lines counted)."""
    wanted = [n for line in added_lines(diff) if len(n := _norm(line)) >= MIN_CHARS]
    given = [n for line in answer_lines(answer) if (n := _norm(line))]
    if not wanted:
        return 0.0, 0.0, 0
    found = set(given)
    recall = sum(line in found for line in wanted) / len(wanted)
    ratio = difflib.SequenceMatcher(None, "\n".join(wanted)[:MAX_CHARS], "\n".join(given)[:MAX_CHARS]).ratio()
    return recall, ratio, len(wanted)


def probe(tasks: list[Task], model: str, cache_dir: Path, api_base: str | None = None) -> Iterator[MemoryProbe]:
    """One model call per task (llm_client's backoff); the diff and the subject from the task's repository."""
    from isobench_ray.llm_client import complete  # litellm only where a model is asked

    for task in tasks:
        bare = mirror(task.repo.url, cache_dir, need=(task.parent_commit, task.human_commit))
        subject = git.Repo(bare).commit(task.human_commit).summary
        diff = diff_between(bare, task.parent_commit, task.human_commit)
        reply = complete(model, probe_messages(task.repo.name, str(subject)), api_base=api_base)
        recall, ratio, counted = overlap(diff, reply.text)
        yield MemoryProbe(task_id=task.id, model=model, human_commit=task.human_commit, subject=str(subject),
                          line_recall=round(recall, 4), similarity=round(ratio, 4), diff_lines=counted, answer=reply.text)
