"""Cutting long text to what is kept: logs, error messages, and what a model or a judge is shown. Pure."""

from __future__ import annotations

import re

# The characters of one command's output kept in an attempt's logs: its end, where errors and results are.
LOG_LIMIT = 200_000


def tail(text: str, lines: int = 20) -> str:
    """The last lines of a command's output: what an error message shows."""
    return "\n".join(text.strip().splitlines()[-lines:])


def log_tail(text: str) -> str:
    """The end of a command's output, as an attempt's log keeps it."""
    return text[-LOG_LIMIT:]


def head_and_tail(text: str, limit: int, what: str = "characters left out") -> str:
    """Long text keeps its head and its tail (where a patch or an output starts and how it ends both tell),
    with a line in the middle saying how much was left out."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} {what} ...]\n{text[-half:]}"


def error_line(detail: str, limit: int = 160) -> str:
    """The line of an error message a table shows: the first, unless the text is a traceback (or a wrapper's
    colour codes), whose cause is its last line."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in detail.strip().splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return ""
    if any(line.startswith("Traceback (most recent call last)") for line in lines):
        return lines[-1][:limit]
    return lines[0][:limit]


def read_log(path) -> str:
    """A process's log as far as it was written; "" before its first line."""
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
