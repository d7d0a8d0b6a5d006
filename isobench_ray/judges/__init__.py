"""Soft metrics: judges compare each agent patch with the human patch, on the driver, as attempts finish.

`JudgePanel` asks every configured judge about every attempt that has a patch (in a thread pool: judges
are HTTP calls), adds the diff scan's hack flags, and writes the attempt's `judgement.json`. Without a
model the rule-based judge answers, and everything it produced says so.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

from isobench_ray.config import Settings
from isobench_ray.judges.base import Judge, JudgeRequest
from isobench_ray.judges.rule_based import RuleBasedJudge
from isobench_ray.schema import AttemptRecord, Judgement, Task
from isobench_ray.scoring.hacks import scan
from isobench_ray.scoring.plausibility import hack_flags
from isobench_ray.scoring.soft import summarize
from isobench_ray.store import RunStore
from isobench_ray.workspace import diff_between, mirror

__all__ = ["Judge", "JudgePanel", "JudgeRequest", "RuleBasedJudge", "make_judges", "judge_request"]


def make_judges(settings: Settings) -> list[Judge]:
    if not settings.judges.models:
        return [RuleBasedJudge()]
    from isobench_ray.judges.llm import LitellmJudge  # litellm is imported only where a model judges

    return [LitellmJudge(model, settings.judges, settings.paths.cache) for model in settings.judges.models]


def judge_request(record: AttemptRecord, task: Task, human_patch: str) -> JudgeRequest | None:
    """None when there is nothing to judge: no patch (noop, a session that failed before one)."""
    patch = record.session.patch if record.session else ""
    if not patch.strip():
        return None
    return JudgeRequest(attempt_id=record.attempt.id, task_id=task.id, description=task.description,
                        benchmark_command=task.benchmark.command, human_patch=human_patch, agent_patch=patch)


def judge_attempt(request: JudgeRequest, judges: list[Judge], flags: Sequence[str] = ()) -> Judgement:
    """The judges' votes, with the diff scan's hack flags and `flags` (those the numbers raise: implausible)."""
    votes = [vote for judge in judges for vote in judge.judge(request)]
    flags = [*scan(request.agent_patch, request.benchmark_command), *flags]
    return summarize(request.attempt_id, votes, all(j.rule_based for j in judges), flags)


class JudgePanel:
    """Judges attempts in the background while the run goes on; `close()` waits for all of them."""

    def __init__(self, run_dir: str | Path, tasks: dict[str, Task], settings: Settings,
                 judges: list[Judge] | None = None):
        self.store = RunStore(run_dir)  # its own store: judgement files are written from the pool's threads
        self.tasks, self.settings = tasks, settings
        self.judges = judges if judges is not None else make_judges(settings)
        self.pool = ThreadPoolExecutor(max_workers=max(1, settings.judges.concurrency), thread_name_prefix="judge")
        self.futures: list[Future] = []
        self._human: dict[str, str] = {}
        self._lock = threading.Lock()
        self.submitted: set[str] = set()

    def _human_patch(self, task: Task) -> str:
        with self._lock:
            if task.id not in self._human:
                path = mirror(task.repo.url, self.settings.paths.cache, (task.parent_commit, task.human_commit))
                self._human[task.id] = diff_between(path, task.parent_commit, task.human_commit)
            return self._human[task.id]

    def _judge(self, record: AttemptRecord) -> Judgement | None:
        task = self.tasks.get(record.attempt.task_id)
        if task is None:
            return None
        try:
            request = judge_request(record, task, self._human_patch(task))
            if request is None:
                return None
            judgement = judge_attempt(request, self.judges, hack_flags(record))
        except Exception as exc:  # a judge's failure is that attempt's judge_error; it never stops the run
            judgement = Judgement(attempt_id=record.attempt.id, judge_error=f"{type(exc).__name__}: {exc}"[:1000])
        previous = self.store.load_stage(record.attempt.id, "judgement")
        if judgement.judge_error and previous is not None and previous.judge_error is None:
            return judgement  # a failed judging never replaces a verdict: the previous one stays
        self.store.save_stage(record.attempt.id, "judgement", judgement, judged=record)
        return judgement

    def check(self) -> list[str]:
        """Each judge asked once before any attempt is sent: the causes of those that cannot answer."""
        return [cause for judge in self.judges if (cause := judge.check())]

    def needs(self, attempt_id: str, again: bool = False) -> bool:
        """Not submitted in this run, and not judged already by these judges with a verdict (unless `again`)."""
        if attempt_id in self.submitted:
            return False
        previous = self.store.load_stage(attempt_id, "judgement")
        return again or previous is None or previous.judge_error is not None or not self._same_judges(previous)

    def submit(self, record: AttemptRecord, again: bool = False) -> None:
        """Judge it unless it was judged already (with a verdict); `again` re-asks also those."""
        if not self.needs(record.attempt.id, again):
            return
        self.submitted.add(record.attempt.id)
        self.futures.append(self.pool.submit(self._judge, record))

    def submit_finished(self, store, again: bool = False) -> None:
        """Every finished attempt of the run that `needs` judging, its record read only then (a run of 100,000
        attempts judged already reads none)."""
        for attempt_id in store.finished():
            if self.needs(attempt_id, again) and (record := store.load_stage(attempt_id, "record")) is not None:
                self.submit(record, again)

    def _same_judges(self, judgement: Judgement) -> bool:
        return {v.judge for v in judgement.votes} == {j.name for j in self.judges}

    def close(self) -> list[Judgement]:
        """Wait for every judgement."""
        done = [f.result() for f in self.futures]
        self.pool.shutdown()
        return [j for j in done if j is not None]
