"""report.html: the report's tables and plots on one self-contained, offline page (jinja2, autoescaped)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import jinja2
import polars as pl
from markupsafe import Markup, escape

from isobench_ray.report.format import human
from isobench_ray.report.template import PAGE


@dataclass(frozen=True)
class Section:
    title: str
    table: pl.DataFrame | None = None  # None: a note only
    note: str = ""
    soft: bool = False  # shows soft metrics: labelled when a rule-based judge gave them


def _cell(value) -> dict:
    if value is None:
        return {"value": "–", "text": False}
    if isinstance(value, bool):
        return {"value": "yes" if value else "no", "text": True}
    if isinstance(value, (float, int)):
        return {"value": human(value), "text": False}
    return {"value": str(value), "text": isinstance(value, str)}


def _table(df: pl.DataFrame) -> dict:
    return {"columns": df.columns, "rows": [[_cell(v) for v in row] for row in df.iter_rows()]}


def _note(text: str) -> Markup:
    """The markdown notes' `code` spans as <code>, everything else escaped."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))


def render_html(name: str, intro: str, sections: list[Section], plots: dict[str, str], rule_based_note: str,
                files: str) -> str:
    """The page; `intro`, `rule_based_note` (empty: no rule-based judge) and `files` are report.md's own texts."""
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    view = [{"title": s.title, "note": _note(s.note), "soft": s.soft, "table": None if s.table is None else _table(s.table)}
            for s in sections]
    return env.from_string(PAGE).render(name=name, intro=_note(intro), sections=view, plots=plots,
                                        rule_based=bool(rule_based_note), rule_based_note=_note(rule_based_note),
                                        files=_note(files))
