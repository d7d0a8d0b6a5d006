"""`isobench mine --verify`: every described candidate measured as the harness measures any task (the human
arm is the commit, against its parent, the A/A arm beside them, interleaved rounds, in the run's sandboxes),
and kept only where the strict rule says the commit is faster beyond the task's own noise (docs/mining.md).

The measuring is an `isobench run` of the pending tasks with the agent `noop` into DIR/verify/: resumable like
any run, its report and logs there to read. What is decided from its records is pure (`verification`)."""

from __future__ import annotations

import git

from isobench_ray.config import Settings
from isobench_ray.mine import Candidate, MinedFiles, Reason, Rejection
from isobench_ray.schema import AttemptRecord, HardClass
from isobench_ray.scoring import hard, stats, verdicts

VERIFY_DIR = "verify"


def verification(record: AttemptRecord | None, margin_pct: float, confidence: float = 0.95,
                 method: stats.Method = stats.DEFAULT_METHOD) -> tuple[Reason | None, str]:
    """(None, how it cleared) for a commit measured faster than its parent beyond the margin and the A/A
    noise; else (the reason it is rejected, why). The intervals as the run scored it (its confidence and
    interval method)."""
    if record is None:
        return "not_measured", "the verify run has no record of it"
    m = record.measurements
    if m is None:
        cause = record.failure_cause.value if record.failure_cause else "failed"
        # the agent is noop: validation checked the parent's tree
        reason: Reason = "test_fails_on_parent" if record.failure_stage == "validation" else "not_measured"
        return reason, f"{record.failure_stage}: {cause}: {record.detail[:300]}"
    for arm, reason in (("baseline", "test_fails_on_parent"), ("human", "test_fails_on_commit")):
        failed = next((a for a in m.arms if a.arm == arm and a.failure_cause), None)
        if failed is not None:
            return reason, f"{failed.failure_cause.value}: {failed.detail[:300]}"
    human = next((a for a in m.arms if a.arm == "human"), None)
    if human is not None and human.equivalent is False:
        return "not_equivalent", "the commit's output differs from the parent's under the test's own check"
    ivs = hard.intervals(m, confidence, method)
    noise = stats.noise_pct(ivs["noise"])
    if noise is None:
        return "too_noisy", "no A/A arm was measured: the noise the gain must clear is unknown"
    n = min(len(a.samples(m.primary_metric)) for a in m.arms if a.arm in ("baseline", "human"))
    verdict = verdicts.interval_verdict(ivs["human"], margin_pct, noise, n)
    said = verdict.reason.replace("agent/human", "commit/parent")
    if verdict.hard_class is HardClass.beats:
        return None, said
    if verdict.hard_class in (HardClass.similar, HardClass.worse):
        return "no_gain", said
    return "too_noisy", said


def verify_pending(repo: git.Repo, files: MinedFiles, settings: Settings, python: str | None = None, **run_options) -> None:
    """Measure the described candidates not verified yet (DIR/verify/ resumes), then move each rejected one
    to rejected.jsonl with its reason and rewrite tasks.yaml from the verified ones. `python`: the
    repository's environment (`python:` in the task files), None for the harness's interpreter."""
    from isobench_ray.agents import parse_agents
    from isobench_ray.mine_describe import task_id, write_tasks
    from isobench_ray.runner import run
    from isobench_ray.store import RunStore

    candidates = files.read_candidates()
    pending = [c for c in candidates if c.description and c.test_script and c.verified is None]
    if not pending:
        return
    run_dir = files.out / VERIFY_DIR
    pending_tasks = files.out / "verify-tasks.yaml"  # only what is measured now; tasks.yaml stays the whole set
    write_tasks(repo, pending, pending_tasks, python)
    # the agent noop: its arm is the parent again, so the run's stop rule (agent against human) measures more
    # rounds exactly while parent against commit is undecided
    run(str(pending_tasks), parse_agents("noop", None), run_dir, settings.replace(noise_arm=True), **run_options)
    records = {r.attempt.task_id: r for r in RunStore(run_dir).records()}
    measured, s = {c.commit_hash for c in pending}, settings.measurement
    kept: list[Candidate] = []
    for cand in candidates:
        if cand.commit_hash in measured:
            reason, detail = verification(records.get(task_id(repo, cand)), s.hard_band_pct, s.confidence, s.interval_method)
            if reason is not None:
                files.add(Rejection(commit_hash=cand.commit_hash, commit_subject=cand.commit_subject, reason=reason,
                                    detail=detail))
                continue
            cand = cand.model_copy(update={"verified": detail})
        kept.append(cand)
    files.replace_candidates(kept)
    write_tasks(repo, [c for c in kept if c.description and c.test_script], files.tasks, python)

