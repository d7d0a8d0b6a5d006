"""Benchmark output -> metrics dict: pure functions over the text and JSON that vLLM's and SGLang's
benchmark scripts produce.

Parsed outputs (every label below is the exact label the script prints; nothing else is read):

- ``serving``: vLLM ``benchmarks/benchmark_serving.py`` / ``vllm bench serve`` (2023 ``Total time`` /
  ``Throughput: X requests/s`` form, and the ``Serving Benchmark Result`` block from 2024 on) and SGLang
  ``bench_serving`` (same block, SGLang labels). Keys as in vLLM's result JSON: ``completed``, ``failed``,
  ``duration`` (s), ``total_input_tokens``, ``total_output_tokens``, ``request_throughput`` (req/s),
  ``request_goodput``, ``input_throughput`` / ``output_throughput`` / ``total_token_throughput`` (tok/s),
  ``max_concurrency``, ``request_rate``, ``max_output_tokens_per_s`` ("Peak output token throughput"),
  ``max_concurrent_requests`` ("Peak concurrent requests") and ``{mean,median,std,p<P>}_{ttft,tpot,itl,e2el}_ms``.
  SGLang extras keep SGLang's JSON names: ``total_output_tokens_retokenized``, ``concurrency``,
  ``accept_length``, ``max_itl_ms``; its "E2E Latency" is vLLM's E2EL and "Total throughput" is
  ``total_token_throughput``. The 2023 form maps "Average latency" (s) to ``mean_e2el_ms`` and keeps
  ``avg_latency_per_token`` / ``avg_latency_per_output_token`` (s), which have no later equivalent.
  ``failed`` comes from "Failed requests:", else from ``num_prompts - completed``; ``partial: True`` when
  failed > 0; ``completed == 0`` raises NoMetricsError (all requests failed).
- ``latency``: vLLM ``benchmark_latency.py`` / ``vllm bench latency``: ``avg_latency``, ``std_latency`` (s)
  and ``percentiles`` ({"10": s, ...}, as in vLLM's JSON).
- ``throughput``: vLLM ``benchmark_throughput.py`` / ``vllm bench throughput``: ``requests_per_second``,
  ``tokens_per_second`` (prompt + output; in the old "X requests/s, Y tokens/s" form Y is that total),
  ``output_tokens_per_second`` (only when printed), ``total_prompt_tokens`` / ``total_output_tokens``
  ("Total num prompt/output tokens"). From the JSON: also ``elapsed_time``, ``num_requests``, ``total_num_tokens``.
- ``prefix_caching``: vLLM ``benchmark_prefix_caching.py`` prints "cost time <s>" after each
  ``llm.generate``; the run after "------warm up------" is ``warmup_cost_time``, the measured run (after
  "------start generating------", or the only run) is ``cost_time`` (both seconds).
- ``one_batch``: SGLang ``bench_one_batch`` (formerly ``bench_latency``): ``prefill_latency``,
  ``median_decode_latency``, ``total_latency`` (s), ``prefill_throughput``, ``median_decode_throughput``,
  ``overall_throughput`` (tok/s), read from the runs after "Benchmark ..." (the warm-up run prints the same
  lines first); for a sweep the last complete run is taken. Its JSONL record has the same key names. The
  mid-2024 ``bench_latency`` form prints one "Prefill." / "Decode." line per step with an "ms" label on values
  in seconds (its throughput is tokens / value): ``prefill_*`` from the measured run's prefill line and
  ``median_decode_latency`` / ``median_decode_throughput``, the median of its decode lines (no total).
- ``offline_throughput``: SGLang ``bench_offline_throughput``, mapped to vLLM's throughput keys where the
  meaning is the same: request throughput -> ``requests_per_second``, total token throughput ->
  ``tokens_per_second``, output -> ``output_tokens_per_second``, input -> ``input_tokens_per_second``,
  duration (JSON ``total_latency``) -> ``elapsed_time``, successful requests -> ``num_requests``, input /
  generated tokens -> ``total_prompt_tokens`` / ``total_output_tokens``; ``last_gen_throughput`` kept as is.

Text is taken as real logs give it: ANSI colours, tqdm bars (``\\r`` updates, a bar glued to the next
line), srun/OpenMPI line labels, and server log lines interleaved. Every value is read only from a line
that is exactly "<label> <number>", so an engine stats line ("Avg prompt throughput: 12.3 tokens/s") can
never be read as a result. When a block is printed more than once (a runner echoing it, several runs in one
log) the last complete one wins. Serving output is also read where people and tools alter it: a log prefix
before each line ("# ", a timestamp; only when the rest of the line is a whole serving line), an annotation
after a value ("0   <<<<<<< New line"), the rows without their header (from "Successful requests:" to the
closing "====="), and SGLang's JSONL result record (``"request_rate": Infinity``) as a line of the text, which
wins over a block printed before it.

JSON wins over text when both are given and the JSON holds a result: the script wrote it from the unrounded
values, whereas the text has two decimals and may be cut or interleaved with other output.
"""

from __future__ import annotations

import ast
import json
import re
from decimal import Decimal
from typing import Any, Callable, Iterable

BENCH_KINDS = ("serving", "latency", "throughput", "prefix_caching", "one_batch", "offline_throughput")

TAIL_LINES = 20


class NoMetricsError(ValueError):
    """No benchmark result in the output. `.tail` holds the last ~20 non-empty lines of the output (for the error message)."""

    def __init__(self, message: str, tail: str = "", *, all_failed: bool = False):
        super().__init__(message)
        self.tail = tail
        self.all_failed = all_failed  # a result was printed, but it says no request succeeded


# ---------------------------------------------------------------------------------------------------
# Line cleaning
# ---------------------------------------------------------------------------------------------------

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?i:inf(?:inity)?)|(?i:nan)"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
# Launchers that label each output line: srun --label ("0: "), mpirun --tag-output ("[1,0]<stdout>:").
_LAUNCHER_LABEL = re.compile(r"^(?:\d+: |\[\d+,\d+\]<std(?:out|err)>:)")
# A tqdm bar ("100%|####| 128/128 [00:09<00:00, 13.97it/s]") that the next print was glued to.
_TQDM_BAR = re.compile(r"^.*?\|\s*\d+/\d+\s*\[[^\]]*\]")


def _clean_lines(text: str) -> list[str]:
    """Split on \\n and \\r (tqdm redraws), drop colours, launcher labels and leading tqdm bars."""
    lines = []
    for raw in re.split(r"\r\n|\r|\n", _ANSI.sub("", text)):
        line = _TQDM_BAR.sub("", _LAUNCHER_LABEL.sub("", raw.strip(), count=1), count=1)
        lines.append(line.strip())
    return lines


def _tail(text: str | None, n: int = TAIL_LINES) -> str:
    if not text:
        return ""
    return "\n".join([line for line in _clean_lines(text) if line][-n:])


# ---------------------------------------------------------------------------------------------------
# Value conversions
# ---------------------------------------------------------------------------------------------------

def _num(s: str) -> float:
    return float(s)  # float() reads "inf", "-0.00", "nan" as Python prints them


def _count(s: str) -> int | float:
    return int(s) if re.fullmatch(r"[-+]?\d+", s) else float(s)


def _s_to_ms(s: str) -> float:
    # Decimal keeps "67.59" s -> 67590.0 ms exact (67.59 * 1000 in floats is 67590.00000000001).
    return float(Decimal(s) * 1000)


# ---------------------------------------------------------------------------------------------------
# Row tables: (anchored label regex -> key(s), conversion)
# ---------------------------------------------------------------------------------------------------

Row = tuple[re.Pattern, Callable[[re.Match], dict]]


# What people paste after a serving value: "0          <<<<<<< New line" (vllm-project/vllm PR #26478),
# "(-20%)", a repeated unit. Any text after whitespace that does not start with another number.
_NOTE = r"(?:\s+(?![-+]?\.?\d)\S.*)?"


def _row(label: str, keys: str | tuple[str, ...], conv: Callable[[str], Any] = _num, unit: str = "",
         note: bool = False) -> Row:
    """A line that is exactly `label <number>[ unit]`; a label with several `{}` slots fills several keys.

    `note`: the number may be followed by an annotation (serving rows only: their labels are unambiguous)."""
    keys = (keys,) if isinstance(keys, str) else keys
    slots = label.count("{}")
    pattern = label.format(*[rf"\s*({_NUM})" for _ in range(slots)]) if slots else rf"{label}\s*({_NUM})"
    rx = re.compile(rf"^{pattern}\s*{unit}{_NOTE if note else ''}$")
    return rx, lambda m: {k: conv(v) for k, v in zip(keys, m.groups())}


_STAT_METRIC = {"TTFT": "ttft", "TPOT": "tpot", "ITL": "itl", "E2EL": "e2el", "E2E Latency": "e2el"}
_STAT_RX = re.compile(
    rf"^(Mean|Median|Std|Max|P(\d+(?:\.\d+)?)) (TTFT|TPOT|ITL|E2EL|E2E Latency) \(ms\):\s*({_NUM}){_NOTE}$")


def _stat(m: re.Match) -> dict:
    # "P99.9 TTFT (ms):" -> p99.9_ttft_ms: vLLM prints the percentile exactly as it names the JSON key.
    stat = f"p{m.group(2)}" if m.group(2) else m.group(1).lower()
    return {f"{stat}_{_STAT_METRIC[m.group(3)]}_ms": _num(m.group(4))}


# vLLM benchmark_serving.py / `vllm bench serve` and SGLang bench_serving, inside "Serving Benchmark Result".
SERVING_ROWS: list[Row] = [
    _row(r"Successful requests:", "completed", _count, note=True),
    _row(r"Failed requests:", "failed", _count, note=True),
    _row(r"Maximum request concurrency:", "max_concurrency", _count, note=True),      # vLLM
    _row(r"Max re(?:quest|qeuest) concurrency:", "max_concurrency", _count, note=True),  # SGLang (with its old typo)
    _row(r"Request rate configured \(RPS\):", "request_rate", note=True),
    _row(r"Traffic request rate:", "request_rate", note=True),                       # SGLang, in the block
    _row(r"Benchmark duration \(s\):", "duration", note=True),
    _row(r"Total input tokens:", "total_input_tokens", _count, note=True),
    _row(r"Total generated tokens:", "total_output_tokens", _count, note=True),
    _row(r"Total generated tokens \(retokenized\):", "total_output_tokens_retokenized", _count, note=True),
    _row(r"Request throughput \(req/s\):", "request_throughput", note=True),
    _row(r"Request goodput \(req/s\):", "request_goodput", note=True),
    _row(r"Input token throughput \(tok/s\):", "input_throughput", note=True),
    _row(r"Output token throughput \(tok/s\):", "output_throughput", note=True),
    _row(r"Peak output token throughput \(tok/s\):", "max_output_tokens_per_s", note=True),
    _row(r"Peak concurrent requests:", "max_concurrent_requests", note=True),
    _row(r"Total [Tt]oken throughput \(tok/s\):", "total_token_throughput", note=True),
    _row(r"Total throughput \(tok/s\):", "total_token_throughput", note=True),         # SGLang 2024
    _row(r"Concurrency:", "concurrency", note=True),                                 # SGLang
    _row(r"Accept length:", "accept_length", note=True),                             # SGLang
    (_STAT_RX, _stat),
]

# What vLLM prints before the run (until it moved into the block): read only when the block lacks it.
SERVING_PREAMBLE_ROWS: list[Row] = [
    _row(r"Maximum request concurrency:", "max_concurrency", _count, note=True),
    _row(r"Traffic request rate:", "request_rate", note=True),
]

# vLLM benchmark_serving.py of 2023 (no result block).
SERVING_2023_ROWS: list[Row] = [
    _row(r"Total time:", "duration", unit="s"),
    _row(r"Throughput:", "request_throughput", unit="requests/s"),
    _row(r"Average latency:", "mean_e2el_ms", _s_to_ms, unit="s"),
    _row(r"Average latency per token:", "avg_latency_per_token", unit="s"),
    _row(r"Average latency per output token:", "avg_latency_per_output_token", unit="s"),
]

LATENCY_ROWS: list[Row] = [
    _row(r"Avg latency:", "avg_latency", unit="seconds"),
    _row(r"Std latency:", "std_latency", unit="seconds"),
    (re.compile(rf"^(\d+(?:\.\d+)?)% percentile latency:\s*({_NUM})\s*seconds$"),
     lambda m: {"percentiles": {m.group(1): _num(m.group(2))}}),
]

THROUGHPUT_ROWS: list[Row] = [
    _row(r"Throughput:{} requests/s,{} total tokens/s,{} output tokens/s",
         ("requests_per_second", "tokens_per_second", "output_tokens_per_second")),
    _row(r"Throughput:{} requests/s,{} tokens/s", ("requests_per_second", "tokens_per_second")),
    _row(r"Total num prompt tokens:", "total_prompt_tokens", _count),
    _row(r"Total num output tokens:", "total_output_tokens", _count),
]

PREFIX_CACHING_ROWS: list[Row] = [_row(r"cost time", "cost_time")]

# SGLang bench_latency of mid-2024 (PR #564): one line per step, labelled "ms" but in seconds (its throughput
# is tokens / that value), no median and no total line.
ONE_BATCH_2024_ROWS: list[Row] = [
    _row(r"Prefill\. latency:{} ms, throughput:{} token/s", ("prefill_latency", "prefill_throughput")),
    _row(r"Decode\.\s+latency:{} ms, throughput:{} token/s", ("decode_latency", "decode_throughput")),
]

ONE_BATCH_ROWS: list[Row] = [
    _row(r"Prefill\. latency:{} s, throughput:{} token/s", ("prefill_latency", "prefill_throughput")),
    _row(r"Decode\.\s+median latency:{} s, median throughput:{} token/s",
         ("median_decode_latency", "median_decode_throughput")),
    _row(r"Total\. latency:{} s, throughput:{} token/s", ("total_latency", "overall_throughput")),
]

# SGLang's offline block prints the serving block's labels; they map to vLLM's offline names.
_OFFLINE_LABELS = {
    r"Successful requests:": ("num_requests", _count), r"Benchmark duration \(s\):": ("elapsed_time", _num),
    r"Total input tokens:": ("total_prompt_tokens", _count), r"Total generated tokens:": ("total_output_tokens", _count),
    r"Last generation throughput \(tok/s\):": ("last_gen_throughput", _num),
    r"Request throughput \(req/s\):": ("requests_per_second", _num),
    r"Input token throughput \(tok/s\):": ("input_tokens_per_second", _num),
    r"Output token throughput \(tok/s\):": ("output_tokens_per_second", _num),
    r"Total token throughput \(tok/s\):": ("tokens_per_second", _num),
}
OFFLINE_THROUGHPUT_ROWS: list[Row] = [_row(label, key, conv) for label, (key, conv) in _OFFLINE_LABELS.items()]

_SERVING_HEADER = re.compile(r"^=+ Serving Benchmark Result =+$")
_OFFLINE_HEADER = re.compile(r"^=+ Offline Throughput Benchmark Result =+$")
_BLOCK_END = re.compile(r"^={10,}$")
_ONE_BATCH_BENCHMARK = re.compile(r"^Benchmark \.\.\.$")
_PREFIX_WARMUP = re.compile(r"^-+warm up-+$")
_PREFIX_GENERATE = re.compile(r"^-+start generating-+$")


def _match(line: str, rows: Iterable[Row]) -> dict | None:
    for rx, read in rows:
        m = rx.match(line)
        if m:
            return read(m)
    return None


def _collect(lines: Iterable[str], rows: list[Row]) -> dict:
    out: dict = {}
    for line in lines:
        found = _match(line, rows)
        for key, value in (found or {}).items():
            if isinstance(value, dict):
                out.setdefault(key, {}).update(value)
            else:
                out[key] = value
    return out


def _starts(lines: list[str], rx_or_rows: re.Pattern | list[Row]) -> list[int]:
    if isinstance(rx_or_rows, re.Pattern):
        return [i for i, line in enumerate(lines) if rx_or_rows.match(line)]
    return [i for i, line in enumerate(lines) if _match(line, rx_or_rows)]


def _spans(starts: list[int], end: int) -> list[tuple[int, int]]:
    return list(zip(starts, starts[1:] + [end]))


def _last_complete(blocks: Iterable[dict], required: str) -> dict | None:
    complete = [b for b in blocks if required in b]
    return complete[-1] if complete else None


# ---------------------------------------------------------------------------------------------------
# Per-kind text parsers: cleaned lines -> metrics (without "kind"), or None when no result
# ---------------------------------------------------------------------------------------------------

def _header_blocks(lines: list[str], header: re.Pattern, rows: list[Row]) -> list[tuple[int, int, dict]]:
    """(first line, end line, values) per result block; a block ends at its '=====' line or the next header."""
    heads = _starts(lines, header)
    blocks = []
    for start, stop in _spans(heads, len(lines)):
        end = next((i for i in range(start + 1, stop) if _BLOCK_END.match(lines[i])), stop)
        blocks.append((start, end, _collect(lines[start + 1:end], rows)))
    return blocks


# sglang.bench_serving appends one JSON line per run to its --output-file (`"request_rate": Infinity` when
# unthrottled: Python's json writes the non-standard literal, and json.loads reads it back); such a line
# also shows up in a log (`cat results.jsonl`). Only a record that _json_kind calls serving is a result.
_JSON_RESULT_LINE = re.compile(r'^\{".*"completed":.*\}$')

# Where a serving line may begin after a log prefix ("# " from a pasted comment, "2024-07-01 12:00:00 ",
# "[stdout] "): after whitespace or a prefix's closing character, at a label the serving rows know.
_SERVING_LINE_START = re.compile(
    r"(?<=[\s\]|:>#])(?=Successful requests:|Failed requests:|Maximum request concurrency:|Max re(?:quest|qeuest)"
    r" concurrency:|Request |Traffic request rate:|Benchmark duration|Total |Input token|Output token|Peak |"
    r"Concurrency:|Accept length:|(?:Mean|Median|Std|Max|P\d[\d.]*) (?:TTFT|TPOT|ITL|E2EL|E2E Latency) |"
    r"=+ Serving Benchmark Result|={10,}$|\{\")")


def _is_serving_line(line: str) -> bool:
    return bool(_SERVING_HEADER.match(line) or _BLOCK_END.match(line) or _JSON_RESULT_LINE.match(line)
                or _match(line, SERVING_ROWS))


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
    if not isinstance(record, dict) or _json_kind(record) != "serving":
        return None
    return _json_metrics("serving", record)


def _headerless_blocks(lines: list[str]) -> list[tuple[int, int, dict]]:
    """Serving rows printed without the "Serving Benchmark Result" header (a log that lost it, a tail cut).

    A block runs from a "Successful requests:" line to the closing '=====' or the next such line; it needs
    a throughput too, so a lone "Successful requests: N" line of some other tool is no result."""
    starts = _starts(lines, SERVING_ROWS[:1])
    blocks = []
    for start, stop in _spans(starts, len(lines)):
        end = next((i for i in range(start + 1, stop) if _BLOCK_END.match(lines[i])), stop)
        values = _collect(lines[start:end], SERVING_ROWS)
        if "request_throughput" in values or "output_throughput" in values:
            blocks.append((start, end, values))
    return blocks


def _serving_lines(lines: list[str]) -> list[str]:
    """Lines as the serving parser reads them: unprefixed, and SGLang's offline block (which prints the same
    "Successful requests:" labels under its own header) blanked, so it is never taken for headerless serving."""
    lines = [_unprefixed(line) for line in lines]
    for start, end, _ in _header_blocks(lines, _OFFLINE_HEADER, []):
        stop = end + 1 if end < len(lines) and _BLOCK_END.match(lines[end]) else end
        lines[start:stop] = [""] * (stop - start)
    return lines


def _serving_text(lines: list[str]) -> dict | None:
    lines = _serving_lines(lines)
    blocks = _header_blocks(lines, _SERVING_HEADER, SERVING_ROWS)
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
        found = (start, {**_collect(lines[preamble_from:start], SERVING_PREAMBLE_ROWS), **values})
    records = [(i, r) for i, line in enumerate(lines) if (r := _json_result(line))]
    # A JSON line after the block is the same run's (or a later run's) record: unrounded, so it wins.
    if records and (found is None or records[-1][0] > found[0]):
        return records[-1][1]
    if found:
        return found[1]
    starts = _starts(lines, [SERVING_2023_ROWS[0]])
    return _last_complete((_collect(lines[a:b], SERVING_2023_ROWS) for a, b in _spans(starts, len(lines))),
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
    keys = {**_OFFLINE_DICT_KEYS, **_OFFLINE_JSON}
    return {keys[k]: float(v) for k, v in data.items() if k in keys and isinstance(v, (int, float))} or None


def _offline_text(lines: list[str]) -> dict | None:
    block = _last_complete((b for _, _, b in _header_blocks(lines, _OFFLINE_HEADER, OFFLINE_THROUGHPUT_ROWS)),
                           "num_requests")
    dicts = [(i, d) for i, line in enumerate(lines) if _OFFLINE_DICT.match(line) and (d := _offline_dict(line))]
    if dicts and (block is None or dicts[-1][0] > max(_starts(lines, _OFFLINE_HEADER), default=-1)):
        return dicts[-1][1]
    return block


def _started_blocks(lines: list[str], start_rows: list[Row], rows: list[Row], required: str) -> dict | None:
    """Blocks that begin at a start line (e.g. "Avg latency:") and run to the next one."""
    starts = _starts(lines, start_rows)
    return _last_complete((_collect(lines[a:b], rows) for a, b in _spans(starts, len(lines))), required)


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
    for a, b in _spans(_starts(lines, ONE_BATCH_2024_ROWS[:1]), len(lines)):
        run: dict = {}
        decodes = []
        for line in lines[a:b]:
            found = _match(line, ONE_BATCH_2024_ROWS)
            if found and "prefill_latency" in found and not run:
                run.update(found)
            elif found and "decode_latency" in found:
                decodes.append(found)
        if run and decodes:
            run["median_decode_latency"] = _median([d["decode_latency"] for d in decodes])
            run["median_decode_throughput"] = _median([d["decode_throughput"] for d in decodes])
            runs.append(run)
    return _last_complete(runs[1:] if len(runs) > 1 else runs, "median_decode_latency")


def _one_batch_text(lines: list[str]) -> dict | None:
    if not _starts(lines, ONE_BATCH_ROWS) and _starts(lines, ONE_BATCH_2024_ROWS):
        return _one_batch_2024_text(lines)
    marks = _starts(lines, _ONE_BATCH_BENCHMARK)
    if marks:
        # Only what follows "Benchmark ..." is measured; if that crashed, the warm-up is no result.
        return _started_blocks(lines[marks[-1] + 1:], ONE_BATCH_ROWS[:1], ONE_BATCH_ROWS, "total_latency")
    starts = _starts(lines, ONE_BATCH_ROWS[:1])
    runs = [_collect(lines[a:b], ONE_BATCH_ROWS) for a, b in _spans(starts, len(lines))]
    # Without the marker the first run is the warm-up, unless it is the only one (a cropped log).
    return _last_complete(runs[1:] if len(runs) > 1 else runs, "total_latency")


def _prefix_caching_text(lines: list[str]) -> dict | None:
    out: dict = {}
    phase = None
    for line in lines:
        if _PREFIX_WARMUP.match(line):
            phase = "warmup"
        elif _PREFIX_GENERATE.match(line):
            phase = "generate"
        else:
            found = _match(line, PREFIX_CACHING_ROWS)
            if found:
                key = "warmup_cost_time" if phase == "warmup" else "cost_time"
                out[key] = found["cost_time"]
    return out if "cost_time" in out else None


_TEXT_PARSERS: dict[str, Callable[[list[str]], dict | None]] = {
    "serving": _serving_text,
    "latency": _latency_text,
    "throughput": _throughput_text,
    "prefix_caching": _prefix_caching_text,
    "one_batch": _one_batch_text,
    "offline_throughput": _offline_text,
}

# Lines that show a kind's result is (at least partly) in the output; the last one in the text wins.
_MARKERS: dict[str, list[re.Pattern]] = {
    "serving": [_SERVING_HEADER, SERVING_2023_ROWS[-1][0], SERVING_ROWS[0][0], _JSON_RESULT_LINE],
    "latency": [LATENCY_ROWS[0][0]],
    "throughput": [rx for rx, _ in THROUGHPUT_ROWS[:2]],
    "prefix_caching": [PREFIX_CACHING_ROWS[0][0]],
    "one_batch": [rx for rx, _ in ONE_BATCH_ROWS + ONE_BATCH_2024_ROWS],
    "offline_throughput": [_OFFLINE_HEADER, _OFFLINE_DICT],
}


def _kinds_by_position(lines: list[str]) -> list[str]:
    last: dict[str, int] = {}
    serving = _serving_lines(lines)  # serving lines may sit behind a log prefix; other kinds' are read as is
    for i, line in enumerate(lines):
        for kind, markers in _MARKERS.items():
            if any(rx.match(serving[i] if kind == "serving" else line) for rx in markers):
                last[kind] = i
    return sorted(last, key=last.get, reverse=True)


# ---------------------------------------------------------------------------------------------------
# Shared finishing: partial serving runs
# ---------------------------------------------------------------------------------------------------

def _finish(kind: str, metrics: dict, num_prompts: int | None, tail: str) -> dict:
    if kind == "serving":
        completed = metrics.get("completed")
        if completed == 0:
            raise NoMetricsError("all requests failed (Successful requests: 0)", tail, all_failed=True)
        if "failed" not in metrics and num_prompts is not None and completed is not None and num_prompts >= completed:
            metrics["failed"] = num_prompts - completed
        if metrics.get("failed", 0) > 0:
            metrics["partial"] = True
    return {"kind": kind, **metrics}


def _check_kind(kind: str | None) -> None:
    if kind is not None and kind not in BENCH_KINDS:
        raise ValueError(f"unknown benchmark kind {kind!r}; expected one of {BENCH_KINDS}")


def parse_text(text: str, kind: str | None = None, *, num_prompts: int | None = None) -> dict:
    """Metrics of the last complete result in a benchmark's console output (see the module docstring)."""
    _check_kind(kind)
    lines = _clean_lines(text or "")
    tail = _tail(text)
    candidates = [kind] if kind else _kinds_by_position(lines)
    for candidate in candidates:
        found = _TEXT_PARSERS[candidate](lines)
        if found:
            return _finish(candidate, found, num_prompts, tail)
    what = f"{kind} benchmark result" if kind else "benchmark result"
    raise NoMetricsError(f"no {what} in the output", tail)


# ---------------------------------------------------------------------------------------------------
# JSON results
# ---------------------------------------------------------------------------------------------------

_JSON_STAT = re.compile(r"^(mean|median|std|max|p\d+(?:\.\d+)?)_(ttft|tpot|itl|e2el|e2e_latency)_ms$")

# (source key -> our key) per kind; keys not listed are dropped (config echo, per-request lists).
_SERVING_JSON = {
    "completed": "completed", "failed": "failed", "duration": "duration", "max_concurrency": "max_concurrency",
    "request_rate": "request_rate", "total_input_tokens": "total_input_tokens",
    "total_output_tokens": "total_output_tokens", "total_output_tokens_retokenized": "total_output_tokens_retokenized",
    "request_throughput": "request_throughput",
    "request_inthroughput": "request_throughput",  # vLLM early-2024 typo
    "request_goodput": "request_goodput", "request_goodput:": "request_goodput",  # vLLM 2024-25 typo
    "input_throughput": "input_throughput", "output_throughput": "output_throughput",
    "total_token_throughput": "total_token_throughput", "total_throughput": "total_token_throughput",  # SGLang
    "max_output_tokens_per_s": "max_output_tokens_per_s", "max_concurrent_requests": "max_concurrent_requests",
    "concurrency": "concurrency", "accept_length": "accept_length",
}
_THROUGHPUT_JSON = {k: k for k in ("elapsed_time", "num_requests", "total_num_tokens", "requests_per_second",
                                   "tokens_per_second", "output_tokens_per_second")}
_ONE_BATCH_JSON = {k: k for k in ("prefill_latency", "prefill_throughput", "median_decode_latency",
                                  "median_decode_throughput", "total_latency", "overall_throughput")}
_OFFLINE_JSON = {
    "successful_requests": "num_requests", "total_latency": "elapsed_time", "total_input_tokens": "total_prompt_tokens",
    "total_output_tokens": "total_output_tokens", "last_gen_throughput": "last_gen_throughput",
    "request_throughput": "requests_per_second", "input_throughput": "input_tokens_per_second",
    "output_throughput": "output_tokens_per_second", "total_throughput": "tokens_per_second",
}


def _json_kind(data: dict) -> str | None:
    if "avg_latency" in data:
        return "latency"
    if "prefill_latency" in data or "overall_throughput" in data:
        return "one_batch"
    if "successful_requests" in data:
        return "offline_throughput"
    if "requests_per_second" in data:
        return "throughput"
    if "completed" in data:
        return "serving"
    return None


def _json_number(value: Any) -> int | float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):  # vLLM writes request_rate "inf" as a string
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _pick(data: dict, mapping: dict[str, str]) -> dict:
    out = {}
    for src, dst in mapping.items():
        value = _json_number(data.get(src))
        if value is not None:
            out[dst] = value
    return out


def _json_metrics(kind: str, data: dict) -> dict:
    if kind == "serving":
        out = _pick(data, _SERVING_JSON)
        for key, value in data.items():
            m = _JSON_STAT.match(key)
            if m and _json_number(value) is not None:
                metric = "e2el" if m.group(2) == "e2e_latency" else m.group(2)  # SGLang's name for E2EL
                out[f"{m.group(1)}_{metric}_ms"] = value
        return out
    if kind == "latency":
        out = _pick(data, {"avg_latency": "avg_latency", "std_latency": "std_latency"})
        if isinstance(data.get("percentiles"), dict):
            out["percentiles"] = {str(k): v for k, v in data["percentiles"].items() if _json_number(v) is not None}
        return out
    mapping = {"throughput": _THROUGHPUT_JSON, "one_batch": _ONE_BATCH_JSON, "offline_throughput": _OFFLINE_JSON}
    return _pick(data, mapping[kind])


def parse_json(data: dict, kind: str | None = None, *, num_prompts: int | None = None) -> dict:
    """Metrics of a benchmark's result JSON (vLLM --save-result/--output-json, SGLang JSONL records).

    A list (the records of a JSONL file) is read as its last record that holds a result.
    """
    _check_kind(kind)
    records = data if isinstance(data, list) else [data]
    for record in reversed(records):
        if not isinstance(record, dict):
            continue
        found_kind = _json_kind(record)
        if found_kind is None or (kind is not None and found_kind != kind):
            continue
        metrics = _json_metrics(found_kind, record)
        if num_prompts is None and found_kind == "serving":
            num_prompts = _json_number(record.get("num_prompts"))  # vLLM's JSON echoes --num-prompts
        return _finish(found_kind, metrics, num_prompts, "")
    what = f"{kind} benchmark result" if kind else "benchmark result"
    raise NoMetricsError(f"no {what} in the JSON")


def parse_metrics(text: str | None = None, json_data: dict | None = None, kind: str | None = None, *,
                  num_prompts: int | None = None) -> dict:
    """JSON wins over text when both are given and the JSON holds a result; raises NoMetricsError when neither does."""
    _check_kind(kind)
    if json_data is not None:
        try:
            return parse_json(json_data, kind, num_prompts=num_prompts)
        except NoMetricsError as exc:
            if exc.all_failed or text is None:
                exc.tail = exc.tail or _tail(text)
                raise
    if text is not None:
        return parse_text(text, kind, num_prompts=num_prompts)
    raise NoMetricsError("no benchmark output given (neither text nor JSON)")

