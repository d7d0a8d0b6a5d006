"""The report's plots as inline SVG strings: matplotlib's object API (no pyplot, no global backend state),
glyphs drawn as paths so the page needs no font, and element ids prefixed per plot so several can share a page."""

from __future__ import annotations

import io
import re

import numpy as np
import polars as pl
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from isobench_ray.report.summary import MEASURED, QUADRANTS, RULE_BASED

_COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]


def _svg(fig: Figure, name: str) -> str:
    buf = io.StringIO()
    with rc_context({"svg.fonttype": "path", "svg.hashsalt": name}):
        fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # drop the XML prologue and doctype: the SVG sits inside HTML
    # ids (clip paths, glyphs) are page-wide in HTML: make each plot's its own
    text = re.sub(r'\bid="([^"]+)"', rf'id="{name}-\1"', text)
    return re.sub(r'(url\(#|href="#)([^")]+)', rf'\g<1>{name}-\2', text)


def _empty(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no data: {what}", ha="center", va="center", fontsize=13, color="#666", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


# Beyond this many attempts a plot's points and error bars are drawn as one image inside the SVG (matplotlib's
# rasterization below a z-order), axes and text staying vector: the page's size no longer grows with the run
RASTER_POINTS = 1000


def _bounded(ax, points: int) -> None:
    if points > RASTER_POINTS:
        ax.set_rasterization_zorder(4)


def speedup_distribution(df: pl.DataFrame) -> str:
    """Each agent's speedups over baseline (measured attempts): a box and the points, a line at 1.0x."""
    fig = Figure(figsize=(9, 4.5))
    ax = fig.add_subplot()
    data = df.filter(MEASURED)
    agents = data.get_column("agent").unique().sort().to_list()
    if not agents:
        _empty(ax, "no measured attempts")
    else:
        values = [data.filter(pl.col("agent") == a).get_column("speedup_vs_baseline").to_numpy() for a in agents]
        _bounded(ax, data.height)
        ax.boxplot(values, tick_labels=agents, showfliers=False, widths=0.5, medianprops={"color": "#222"})
        rng = np.random.default_rng(0)
        for i, v in enumerate(values, start=1):
            ax.scatter(i + rng.uniform(-0.12, 0.12, len(v)), v, s=18, alpha=0.75, color=_COLORS[(i - 1) % len(_COLORS)],
                       zorder=3)
        ax.axhline(1.0, color="#888", lw=1, ls="--")
        ax.set_ylabel("speedup vs baseline (x, > 1 faster)")
    ax.set_title("Speedup distribution per agent")
    return _svg(fig, "speedups")


def agent_vs_human(df: pl.DataFrame) -> str:
    """Per task: the human commit's speedup and each agent's, with their 95% intervals as error bars."""
    data = df.filter(MEASURED).sort("task_id")
    tasks = data.get_column("task_id").unique().sort().to_list()
    fig = Figure(figsize=(min(max(9, 0.7 * len(tasks) + 3), 18), 5))
    ax = fig.add_subplot()
    if not tasks:
        _empty(ax, "no measured attempts")
        ax.set_title("Agent vs human per task")
        return _svg(fig, "vshuman")
    x = {t: i for i, t in enumerate(tasks)}
    agents = data.get_column("agent").unique().sort().to_list()
    _bounded(ax, data.height)
    width = 0.7 / (len(agents) + 1)

    def bars(frame: pl.DataFrame, col: str, low: str, high: str, offset: float, label: str, color: str, marker: str):
        frame = frame.filter(pl.col(col).is_not_null())
        if frame.is_empty():
            return
        pos = np.array([x[t] for t in frame.get_column("task_id").to_list()]) + offset
        y = frame.get_column(col).to_numpy().astype(float)
        lo, hi = (frame.select(pl.col(c).fill_null(pl.col(col))).to_series().to_numpy().astype(float) for c in (low, high))
        err = np.vstack([np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)])
        ax.errorbar(pos, y, yerr=err, fmt=marker, color=color, ms=6, capsize=3, lw=1.2, label=label)

    human = data.unique(subset=["task_id"], keep="first", maintain_order=True)
    bars(human, "human_speedup_vs_baseline", "human_speedup_ci_low", "human_speedup_ci_high", -0.35 + width / 2,
         "human commit", "#222", "s")
    for i, agent in enumerate(agents, start=1):
        bars(data.filter(pl.col("agent") == agent), "speedup_vs_baseline", "speedup_ci_low", "speedup_ci_high",
             -0.35 + width * (i + 0.5), agent, _COLORS[(i - 1) % len(_COLORS)], "o")
    ax.axhline(1.0, color="#888", lw=1, ls="--")
    ax.set_xticks(range(len(tasks)), tasks, rotation=30 if len(tasks) < 20 else 90, ha="right", fontsize=max(4, min(8, 300 / len(tasks))))
    ax.set_ylabel("speedup vs baseline (x), 95% interval")
    ax.set_title("Agent vs human per task")
    ax.legend(fontsize=8, loc="best")
    return _svg(fig, "vshuman")


def quadrant_bars(quadrants: pl.DataFrame, rule_based: bool) -> str:
    """Quadrant shares per agent under the paper's rule and the interval rule, over judged attempts."""
    fig = Figure(figsize=(12, 4.5))
    axes = fig.subplots(1, 2, sharey=True)
    judged = quadrants.filter(pl.col("judged") > 0)
    suffix = f" ({RULE_BASED})" if rule_based else ""
    for ax, (title, fmt) in zip(axes, [("paper's rule", "{q}"), ("interval rule", "{q}_ci")]):
        ax.set_title(f"Quadrants, {title}{suffix}", fontsize=10)
        if judged.is_empty():
            _empty(ax, "no judged attempts")
            continue
        agents = judged.get_column("agent").to_list()
        width = 0.8 / len(agents)
        for i, agent in enumerate(agents):
            row = judged.row(i, named=True)
            shares = [row[fmt.format(q=q)] / row["judged"] for q in QUADRANTS]
            ax.bar(np.arange(4) + (i - (len(agents) - 1) / 2) * width, shares, width, label=agent,
                   color=_COLORS[i % len(_COLORS)])
        ax.set_xticks(range(4), ["Q1\ntrue success", "Q2\ngood intent", "Q3\nlucky win", "Q4\nfailure"], fontsize=8)
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("share of judged attempts")
    if not judged.is_empty():
        axes[0].legend(fontsize=8)
    return _svg(fig, "quadrants")


def failure_causes(df: pl.DataFrame) -> str:
    """How many attempts ended with each failure cause, stacked by agent."""
    data = df.filter(pl.col("failure_cause").is_not_null())
    fig = Figure(figsize=(9, max(3.0, 0.35 * data.get_column("failure_cause").n_unique() + 1.5)))
    ax = fig.add_subplot()
    if data.is_empty():
        _empty(ax, "no failures")
    else:
        causes = data.group_by("failure_cause").len().sort(["len", "failure_cause"]).get_column("failure_cause").to_list()
        left = np.zeros(len(causes))
        for i, agent in enumerate(data.get_column("agent").unique().sort().to_list()):
            counts = dict(data.filter(pl.col("agent") == agent).group_by("failure_cause").len().iter_rows())
            widths = np.array([counts.get(c, 0) for c in causes], dtype=float)
            ax.barh(causes, widths, left=left, label=agent, color=_COLORS[i % len(_COLORS)])
            left += widths
        ax.set_xlabel("attempts")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
    ax.set_title("Failure causes")
    return _svg(fig, "failures")


def all_plots(df: pl.DataFrame, quadrants: pl.DataFrame, rule_based: bool) -> dict[str, str]:
    return {
        "Speedup distribution per agent": speedup_distribution(df),
        "Agent vs human per task": agent_vs_human(df),
        "Quadrants" + (f" ({RULE_BASED})" if rule_based else ""): quadrant_bars(quadrants, rule_based),
        "Failure causes": failure_causes(df),
    }
