"""Numbers as people read them, the same in report.md, report.html and the terminal: three significant
digits, thousands separators, no scientific notation for what a benchmark measures."""

from __future__ import annotations

import math

import polars as pl


def human(value: float | int | None) -> str:
    """17683.1 -> '17,683'; 2.98712 -> '2.99'; 0.0421 -> '0.0421'; None -> '–'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}" if abs(value) < 1e15 else f"{value:.3g}"
    if abs(value) < 1e-4:
        return f"{value:.3g}"  # a tiny value stays readable (and implausible values show as what they are)
    digits = max(0, 2 - math.floor(math.log10(abs(value))))  # three significant digits
    return f"{value:.{digits}f}"


def for_people(df: pl.DataFrame) -> pl.DataFrame:
    """Every float column as text written by `human` (what the markdown tables and the terminal print)."""
    floats = [c for c, t in df.schema.items() if t in (pl.Float64, pl.Float32)]
    done = df.with_columns(*[pl.col(c).map_elements(human, return_dtype=pl.Utf8) for c in floats]) if floats else df
    return done.with_columns(pl.col(pl.Utf8).fill_null("–"))  # an empty cell reads as one, not as "null"
