"""report.html: the report's tables and plots on one self-contained, offline page (jinja2, autoescaped)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import jinja2
import polars as pl
from markupsafe import Markup, escape

from isobench_ray.report.format import human
from isobench_ray.report.template import PAGE
from isobench_ray.schema import is_safe_name


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
    """Cells for the template; an attempt id links to the attempt's own page (report/attempt_page.py)."""
    rows = []
    for row in df.iter_rows(named=True):
        cells = [{**_cell(v), "href": None} for v in row.values()]
        if row.get("attempt_id") and is_safe_name(row["attempt_id"]):
            cells[df.columns.index("attempt_id")]["href"] = f"attempts/{row['attempt_id']}/index.html"
        rows.append(cells)
    return {"columns": df.columns, "rows": rows}


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
