"""Benchmark result JSON -> metrics: vLLM's --save-result/--output-json files and SGLang's JSONL records,
mapped to the same keys as the text (parsing.py's docstring)."""

from __future__ import annotations

import re
from typing import Any

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
OFFLINE_JSON = {
    "successful_requests": "num_requests", "total_latency": "elapsed_time", "total_input_tokens": "total_prompt_tokens",
    "total_output_tokens": "total_output_tokens", "last_gen_throughput": "last_gen_throughput",
    "request_throughput": "requests_per_second", "input_throughput": "input_tokens_per_second",
    "output_throughput": "output_tokens_per_second", "total_throughput": "tokens_per_second",
}


def json_kind(data: dict) -> str | None:
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


def json_number(value: Any) -> int | float | None:
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
        value = json_number(data.get(src))
        if value is not None:
            out[dst] = value
    return out


def json_metrics(kind: str, data: dict) -> dict:
    if kind == "serving":
        out = _pick(data, _SERVING_JSON)
        for key, value in data.items():
            m = _JSON_STAT.match(key)
            if m and json_number(value) is not None:
                metric = "e2el" if m.group(2) == "e2e_latency" else m.group(2)  # SGLang's name for E2EL
                out[f"{m.group(1)}_{metric}_ms"] = value
        return out
    if kind == "latency":
        out = _pick(data, {"avg_latency": "avg_latency", "std_latency": "std_latency"})
        if isinstance(data.get("percentiles"), dict):
            out["percentiles"] = {str(k): v for k, v in data["percentiles"].items() if json_number(v) is not None}
        return out
    mapping = {"throughput": _THROUGHPUT_JSON, "one_batch": _ONE_BATCH_JSON, "offline_throughput": OFFLINE_JSON}
    return _pick(data, mapping[kind])
