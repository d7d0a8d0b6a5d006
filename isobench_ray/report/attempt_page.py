"""One page per attempt, beside its files (attempts/<id>/index.html): what a person reads to see what an
agent did and how it was measured. Self-contained and offline like report.html (inline CSS and SVG, no
script); everything the agent or its model wrote is escaped (jinja2 autoescape) and cut to a bounded size,
so a page stays small however long the logs are. report.html links each attempt to its page.
"""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
from matplotlib.figure import Figure

from isobench_ray.report.format import human
from isobench_ray.report.plots import _COLORS, _svg
from isobench_ray.schema import AttemptRecord, Judgement
from isobench_ray.text import head_and_tail

TEXT_LIMIT = 40_000  # characters of one text shown on a page (patch, prompt, one log): head and tail kept
LOG_FILES = 40  # logs shown per page, the validation's first, then the benchmark's


def samples_plot(record: AttemptRecord) -> str:
    """Each arm's counted samples of the primary metric, by round: the numbers behind the speedups."""
    m = record.measurements
    fig = Figure(figsize=(6.5, 2.6))
    ax = fig.add_subplot()
    for i, arm in enumerate(m.arms if m else []):
        runs = [r for r in arm.runs if r.is_sample and m.primary_metric in r.metrics]
        ax.scatter([r.round + 0.08 * (i - 1.5) for r in runs], [float(r.metrics[m.primary_metric]) for r in runs],
                   s=18, color=_COLORS[i % len(_COLORS)], label=arm.arm)
    if m:
        ax.set_ylabel(m.primary_metric + (" (higher is better)" if m.higher_is_better else " (lower is better)"))
        ax.set_xlabel("round")
        ax.legend(fontsize=8, ncols=4, loc="upper center", bbox_to_anchor=(0.5, 1.25), frameon=False)
    return _svg(fig, "samples")


def _read(path: Path) -> str:
    try:
        return head_and_tail(path.read_text(errors="replace"), TEXT_LIMIT, "characters left out")
    except OSError:
        return ""


def _diff_lines(diff: str) -> list[dict]:
    """The patch line by line with its kind (added, removed, hunk, file): coloured by CSS, escaped by jinja2."""
    def kind(line: str) -> str:
        if line.startswith(("+++", "---", "diff --git")):
            return "file"
        return {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "")
    return [{"text": line, "kind": kind(line)} for line in diff.splitlines()]


def _trajectory(folder: Path) -> list[dict]:
    """The built-in agent's steps (trajectory.json: role and content per message); other agents' trajectory
    files are shown as logs."""
    try:
        data = json.loads((folder / "trajectory.json").read_text())
    except (OSError, ValueError):
        return []
    return [{"role": str(m.get("role", "")), "content": head_and_tail(str(m.get("content", "")), 8000)}
            for m in data.get("messages", []) if isinstance(m, dict)]


def _logs(folder: Path) -> list[dict]:
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.log"))
    ordered = [n for n in names if n.startswith("validate")] + [n for n in names if not n.startswith("validate")]
    return [{"name": n, "text": _read(folder / n)} for n in ordered[:LOG_FILES]]


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{human(value)}%"


def _facts(record: AttemptRecord, model: str | None) -> list[tuple[str, str]]:
    s = record.scores
    facts = [("task", record.attempt.task_id), ("agent", record.attempt.agent), ("model", model or "–"),
             ("status", record.status.value), ("cause", record.failure_cause.value if record.failure_cause else "–"),
             ("detail", (record.detail or "–")[:500])]
    if s:
        facts += [("speedup over baseline", human(s.speedup_vs_baseline)),
                  ("human speedup", human(s.human_speedup_vs_baseline)),
                  ("agent vs human", _pct(s.agent_vs_human_pct)),
                  ("paper's class", s.hard_class.value),
                  ("strict class", s.hard_class_ci.value + (f" ({s.verdict_reason})" if s.verdict_reason else "")),
                  ("A/A noise", _pct(s.noise_pct)), ("correctness", s.correctness)]
    if record.session:
        facts += [("steps", str(record.session.steps)), ("tokens", human(record.session.tokens)),
                  ("cost", f"${human(record.session.cost_usd)}" if record.session.cost_usd is not None else "–")]
    return facts


def render_attempt(folder: Path, record: AttemptRecord, judgement: Judgement | None, model: str | None = None) -> str:
    """The attempt's page from its folder's files."""
    from isobench_ray.report.template import ATTEMPT_PAGE

    votes = [{"judge": v.judge, "order": v.order or "–", "error": v.error or "",
              "verdict": v.verdict.model_dump_json(indent=1) if v.verdict else ""} for v in (judgement.votes if judgement else [])]
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(ATTEMPT_PAGE).render(
        attempt_id=record.attempt.id, facts=_facts(record, model), diff=_diff_lines(_read(folder / "patch.diff")),
        prompt=_read(folder / "prompt.md"), steps=_trajectory(folder), logs=_logs(folder),
        plot=samples_plot(record) if record.measurements else "", votes=votes,
        hack_flags=", ".join(judgement.hack_flags) if judgement else "")


# Pages rendered by one report at most (a page with its samples plot takes about 0.2 s): a larger run gets the
# rest from `isobench view`, which renders a missing page when it is asked for (render_missing)
PAGES_PER_REPORT = 200


def stale(folder: Path) -> bool:
    """The page is missing, or older than the record or judgement it shows."""
    page = folder / "index.html"
    if not page.exists():
        return True
    built = page.stat().st_mtime
    return any((folder / name).exists() and (folder / name).stat().st_mtime > built for name in ("record.json", "judgement.json"))


def write_attempt_pages(store, attempt_ids: list[str], models: dict[str, str], limit: int | None = None) -> int:
    """attempts/<id>/index.html for the attempts whose page is missing or stale, `limit` at most (in the order
    given; default PAGES_PER_REPORT), each record read only for its page; returns how many were written."""
    from isobench_ray.store import write_atomic

    limit = PAGES_PER_REPORT if limit is None else limit
    written = 0
    for attempt_id in attempt_ids:
        folder = store.attempt_dir(attempt_id)
        if written >= limit:
            break
        if not stale(folder) or (record := store.load_stage(attempt_id, "record")) is None:
            continue
        page = render_attempt(folder, record, store.load_stage(attempt_id, "judgement"), models.get(record.attempt.agent))
        write_atomic(folder / "index.html", page)
        written += 1
    return written


def render_missing(root: Path, attempt_id: str) -> bool:
    """Render one attempt's page when it is missing or stale (`isobench view`, asked for it); False when the run
    has no such finished attempt."""
    from isobench_ray.report.frames import agent_models
    from isobench_ray.store import RunStore, write_atomic

    store = RunStore(root)
    folder = store.attempt_dir(attempt_id)
    record = store.load_stage(attempt_id, "record") if folder.parent == root / "attempts" else None
    if record is None:
        return False
    if stale(folder):
        models = agent_models(store.read_json("run.json"))
        write_atomic(folder / "index.html", render_attempt(folder, record, store.load_stage(attempt_id, "judgement"),
                                                           models.get(record.attempt.agent)))
    return True
