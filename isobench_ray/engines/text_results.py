"""Per-kind parsers of a benchmark's console output: cleaned lines -> metrics (without "kind"), or None when
the lines hold no result of that kind; and which kinds' results a text shows, last first."""

from __future__ import annotations

import ast
import json
import re
from typing import Callable

from isobench_ray.engines.json_results import OFFLINE_JSON, json_kind, json_metrics
from isobench_ray.engines.text_rows import (
    BLOCK_END,
    LATENCY_ROWS,
    OFFLINE_HEADER,
    OFFLINE_THROUGHPUT_ROWS,
    ONE_BATCH_2024_ROWS,
    ONE_BATCH_BENCHMARK,
    ONE_BATCH_ROWS,
    PREFIX_CACHING_ROWS,
    PREFIX_GENERATE,
    PREFIX_WARMUP,
    SERVING_2023_ROWS,
    SERVING_HEADER,
    SERVING_PREAMBLE_ROWS,
    SERVING_ROWS,
    THROUGHPUT_ROWS,
    Row,
    block_spans,
    collect,
    find_starts,
    last_complete,
    match_row,
)


def _header_blocks(lines: list[str], header: re.Pattern, rows: list[Row]) -> list[tuple[int, int, dict]]:
    """(first line, end line, values) per result block; a block ends at its '=====' line or the next header."""
    heads = find_starts(lines, header)
    blocks = []
    for start, stop in block_spans(heads, len(lines)):
        end = next((i for i in range(start + 1, stop) if BLOCK_END.match(lines[i])), stop)
        blocks.append((start, end, collect(lines[start + 1:end], rows)))
    return blocks


# sglang.bench_serving appends one JSON line per run to its --output-file (`"request_rate": Infinity` when
# unthrottled: Python's json writes the non-standard literal, and json.loads reads it back); such a line
# also shows up in a log (`cat results.jsonl`). Only a record that json_kind calls serving is a result.
_JSON_RESULT_LINE = re.compile(r'^\{".*"completed":.*\}$')

# Where a serving line may begin after a log prefix ("# " from a pasted comment, "2024-07-01 12:00:00 ",
# "[stdout] "): after whitespace or a prefix's closing character, at a label the serving rows know.
_SERVING_LINE_START = re.compile(
    r"(?<=[\s\]|:>#])(?=Successful requests:|Failed requests:|Maximum request concurrency:|Max re(?:quest|qeuest)"
    r" concurrency:|Request |Traffic request rate:|Benchmark duration|Total |Input token|Output token|Peak |"
    r"Concurrency:|Accept length:|(?:Mean|Median|Std|Max|P\d[\d.]*) (?:TTFT|TPOT|ITL|E2EL|E2E Latency) |"
    r"=+ Serving Benchmark Result|={10,}$|\{\")")


def _is_serving_line(line: str) -> bool:
    return bool(SERVING_HEADER.match(line) or BLOCK_END.match(line) or _JSON_RESULT_LINE.match(line)
                or match_row(line, SERVING_ROWS))


def _unprefixed(line: str) -> str:
    """The serving line inside a prefixed log line; the line unchanged when it holds none.

    The suffix must itself be a whole serving line, so a stats line that merely contains a label's words
    (vLLM's "Avg prompt throughput: ...", SGLang's "gen throughput (token/s): ...") stays unread."""
    if not line or _is_serving_line(line):
        return line
    for m in _SERVING_LINE_START.finditer(line):
        if _is_serving_line(line[m.start():]):
            return line[m.start():]
    return line


def _json_result(line: str) -> dict | None:
    if not _JSON_RESULT_LINE.match(line):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or json_kind(record) != "serving":
        return None
    return json_metrics("serving", record)


def _headerless_blocks(lines: list[str]) -> list[tuple[int, int, dict]]:
    """Serving rows printed without the "Serving Benchmark Result" header (a log that lost it, a tail cut).

    A block runs from a "Successful requests:" line to the closing '=====' or the next such line; it needs
    a throughput too, so a lone "Successful requests: N" line of some other tool is no result."""
    starts = find_starts(lines, SERVING_ROWS[:1])
    blocks = []
    for start, stop in block_spans(starts, len(lines)):
        end = next((i for i in range(start + 1, stop) if BLOCK_END.match(lines[i])), stop)
        values = collect(lines[start:end], SERVING_ROWS)
        if "request_throughput" in values or "output_throughput" in values:
            blocks.append((start, end, values))
    return blocks


def _serving_lines(lines: list[str]) -> list[str]:
    """Lines as the serving parser reads them: unprefixed, and SGLang's offline block (which prints the same
    "Successful requests:" labels under its own header) blanked, so it is never taken for headerless serving."""
    lines = [_unprefixed(line) for line in lines]
    for start, end, _ in _header_blocks(lines, OFFLINE_HEADER, []):
        stop = end + 1 if end < len(lines) and BLOCK_END.match(lines[end]) else end
        lines[start:stop] = [""] * (stop - start)
    return lines


def _serving_text(lines: list[str]) -> dict | None:
    lines = _serving_lines(lines)
    blocks = _header_blocks(lines, SERVING_HEADER, SERVING_ROWS)
    complete = [i for i, (_, _, values) in enumerate(blocks) if "completed" in values]
    if not complete:
        blocks = _headerless_blocks(lines)
        complete = list(range(len(blocks)))
    found: tuple[int, dict] | None = None
    if complete:
        idx = complete[-1]
        start, _, values = blocks[idx]
        # The preamble of a block is what the same run printed between the previous block and this one.
        preamble_from = blocks[idx - 1][1] if idx > 0 else 0
        found = (start, {**collect(lines[preamble_from:start], SERVING_PREAMBLE_ROWS), **values})
    records = [(i, r) for i, line in enumerate(lines) if (r := _json_result(line))]
    # A JSON line after the block is the same run's (or a later run's) record: unrounded, so it wins.
    if records and (found is None or records[-1][0] > found[0]):
        return records[-1][1]
    if found:
        return found[1]
    starts = find_starts(lines, [SERVING_2023_ROWS[0]])
    return last_complete((collect(lines[a:b], SERVING_2023_ROWS) for a, b in block_spans(starts, len(lines))),
                          "request_throughput")


# SGLang's bench_offline_throughput of late 2024 printed its result as a Python dict (sgl-project/sglang#1968):
# {'run_name': 'before', 'total_input_tokens': 233369, 'total_latency': 28.64, 'total_output_tokens': 126886,
#  'throughput': 12577.55}, where throughput is all tokens (input and output) per second.
_OFFLINE_DICT = re.compile(r"^\{'(?:run_name|backend)'.*'total_latency'.*\}$")
_OFFLINE_DICT_KEYS = {"total_latency": "elapsed_time", "total_input_tokens": "total_prompt_tokens",
                      "total_output_tokens": "total_output_tokens", "throughput": "tokens_per_second"}


def _offline_dict(line: str) -> dict | None:
    try:
        data = ast.literal_eval(line)
    except (ValueError, SyntaxError):
        return None
    if not isinstance(data, dict):
        return None
    keys = {**_OFFLINE_DICT_KEYS, **OFFLINE_JSON}
    return {keys[k]: float(v) for k, v in data.items() if k in keys and isinstance(v, (int, float))} or None


def _offline_text(lines: list[str]) -> dict | None:
    block = last_complete((b for _, _, b in _header_blocks(lines, OFFLINE_HEADER, OFFLINE_THROUGHPUT_ROWS)),
                           "num_requests")
    dicts = [(i, d) for i, line in enumerate(lines) if _OFFLINE_DICT.match(line) and (d := _offline_dict(line))]
    if dicts and (block is None or dicts[-1][0] > max(find_starts(lines, OFFLINE_HEADER), default=-1)):
        return dicts[-1][1]
    return block


def _started_blocks(lines: list[str], start_rows: list[Row], rows: list[Row], required: str) -> dict | None:
    """Blocks that begin at a start line (e.g. "Avg latency:") and run to the next one."""
    starts = find_starts(lines, start_rows)
    return last_complete((collect(lines[a:b], rows) for a, b in block_spans(starts, len(lines))), required)


def _latency_text(lines: list[str]) -> dict | None:
    return _started_blocks(lines, LATENCY_ROWS[:1], LATENCY_ROWS, "avg_latency")


def _throughput_text(lines: list[str]) -> dict | None:
    return _started_blocks(lines, THROUGHPUT_ROWS[:2], THROUGHPUT_ROWS, "requests_per_second")


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _one_batch_2024_text(lines: list[str]) -> dict | None:
    """The per-step form: runs start at "Prefill."; the first is the warm-up unless it is the only one."""
    runs = []
    for a, b in block_spans(find_starts(lines, ONE_BATCH_2024_ROWS[:1]), len(lines)):
        run: dict = {}
        decodes = []
        for line in lines[a:b]:
            found = match_row(line, ONE_BATCH_2024_ROWS)
            if found and "prefill_latency" in found and not run:
                run.update(found)
            elif found and "decode_latency" in found:
                decodes.append(found)
        if run and decodes:
            run["median_decode_latency"] = _median([d["decode_latency"] for d in decodes])
            run["median_decode_throughput"] = _median([d["decode_throughput"] for d in decodes])
            runs.append(run)
    return last_complete(runs[1:] if len(runs) > 1 else runs, "median_decode_latency")


def _one_batch_text(lines: list[str]) -> dict | None:
    if not find_starts(lines, ONE_BATCH_ROWS) and find_starts(lines, ONE_BATCH_2024_ROWS):
        return _one_batch_2024_text(lines)
    marks = find_starts(lines, ONE_BATCH_BENCHMARK)
    if marks:
        # Only what follows "Benchmark ..." is measured; if that crashed, the warm-up is no result.
        return _started_blocks(lines[marks[-1] + 1:], ONE_BATCH_ROWS[:1], ONE_BATCH_ROWS, "total_latency")
    starts = find_starts(lines, ONE_BATCH_ROWS[:1])
    runs = [collect(lines[a:b], ONE_BATCH_ROWS) for a, b in block_spans(starts, len(lines))]
    # Without the marker the first run is the warm-up, unless it is the only one (a cropped log).
    return last_complete(runs[1:] if len(runs) > 1 else runs, "total_latency")


def _prefix_caching_text(lines: list[str]) -> dict | None:
    out: dict = {}
    phase = None
    for line in lines:
        if PREFIX_WARMUP.match(line):
            phase = "warmup"
        elif PREFIX_GENERATE.match(line):
            phase = "generate"
        else:
            found = match_row(line, PREFIX_CACHING_ROWS)
            if found:
                key = "warmup_cost_time" if phase == "warmup" else "cost_time"
                out[key] = found["cost_time"]
    return out if "cost_time" in out else None


TEXT_PARSERS: dict[str, Callable[[list[str]], dict | None]] = {
    "serving": _serving_text,
    "latency": _latency_text,
    "throughput": _throughput_text,
    "prefix_caching": _prefix_caching_text,
    "one_batch": _one_batch_text,
    "offline_throughput": _offline_text,
}

# Lines that show a kind's result is (at least partly) in the output; the last one in the text wins.
_MARKERS: dict[str, list[re.Pattern]] = {
    "serving": [SERVING_HEADER, SERVING_2023_ROWS[-1][0], SERVING_ROWS[0][0], _JSON_RESULT_LINE],
    "latency": [LATENCY_ROWS[0][0]],
    "throughput": [rx for rx, _ in THROUGHPUT_ROWS[:2]],
    "prefix_caching": [PREFIX_CACHING_ROWS[0][0]],
    "one_batch": [rx for rx, _ in ONE_BATCH_ROWS + ONE_BATCH_2024_ROWS],
    "offline_throughput": [OFFLINE_HEADER, _OFFLINE_DICT],
}


def kinds_by_position(lines: list[str]) -> list[str]:
    last: dict[str, int] = {}
    serving = _serving_lines(lines)  # serving lines may sit behind a log prefix; other kinds' are read as is
    for i, line in enumerate(lines):
        for kind, markers in _MARKERS.items():
            if any(rx.match(serving[i] if kind == "serving" else line) for rx in markers):
                last[kind] = i
    return sorted(last, key=last.get, reverse=True)
