"""The lines vLLM's and SGLang's benchmark scripts print, as tables of rows (an anchored label, the key or
keys it fills, the conversion), and the helpers that clean a log into lines and find blocks of rows in them.
Read by text_results.py; what each kind's labels mean is in parsing.py's docstring."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Callable, Iterable

# ---------------------------------------------------------------------------------------------------
# Line cleaning
# ---------------------------------------------------------------------------------------------------

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?i:inf(?:inity)?)|(?i:nan)"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
# Launchers that label each output line: srun --label ("0: "), mpirun --tag-output ("[1,0]<stdout>:").
_LAUNCHER_LABEL = re.compile(r"^(?:\d+: |\[\d+,\d+\]<std(?:out|err)>:)")
# A tqdm bar ("100%|####| 128/128 [00:09<00:00, 13.97it/s]") that the next print was glued to.
_TQDM_BAR = re.compile(r"^.*?\|\s*\d+/\d+\s*\[[^\]]*\]")


def clean_lines(text: str) -> list[str]:
    """Split on \\n and \\r (tqdm redraws), drop colours, launcher labels and leading tqdm bars."""
    lines = []
    for raw in re.split(r"\r\n|\r|\n", _ANSI.sub("", text)):
        line = _TQDM_BAR.sub("", _LAUNCHER_LABEL.sub("", raw.strip(), count=1), count=1)
        lines.append(line.strip())
    return lines


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

SERVING_HEADER = re.compile(r"^=+ Serving Benchmark Result =+$")
OFFLINE_HEADER = re.compile(r"^=+ Offline Throughput Benchmark Result =+$")
BLOCK_END = re.compile(r"^={10,}$")
ONE_BATCH_BENCHMARK = re.compile(r"^Benchmark \.\.\.$")
PREFIX_WARMUP = re.compile(r"^-+warm up-+$")
PREFIX_GENERATE = re.compile(r"^-+start generating-+$")


def match_row(line: str, rows: Iterable[Row]) -> dict | None:
    for rx, read in rows:
        m = rx.match(line)
        if m:
            return read(m)
    return None


def collect(lines: Iterable[str], rows: list[Row]) -> dict:
    out: dict = {}
    for line in lines:
        found = match_row(line, rows)
        for key, value in (found or {}).items():
            if isinstance(value, dict):
                out.setdefault(key, {}).update(value)
            else:
                out[key] = value
    return out


def find_starts(lines: list[str], rx_or_rows: re.Pattern | list[Row]) -> list[int]:
    if isinstance(rx_or_rows, re.Pattern):
        return [i for i, line in enumerate(lines) if rx_or_rows.match(line)]
    return [i for i, line in enumerate(lines) if match_row(line, rx_or_rows)]


def block_spans(starts: list[int], end: int) -> list[tuple[int, int]]:
    return list(zip(starts, starts[1:] + [end]))


def last_complete(blocks: Iterable[dict], required: str) -> dict | None:
    complete = [b for b in blocks if required in b]
    return complete[-1] if complete else None
