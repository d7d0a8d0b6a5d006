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

This module holds the entry points (parse_text, parse_json, parse_metrics) and what they share; the row
tables and line helpers are in text_rows.py, the per-kind text parsers in text_results.py and the JSON
mappings in json_results.py.
"""

from __future__ import annotations

from isobench_ray.engines.json_results import json_kind, json_metrics, json_number
from isobench_ray.engines.text_results import TEXT_PARSERS, kinds_by_position
from isobench_ray.engines.text_rows import clean_lines

BENCH_KINDS = ("serving", "latency", "throughput", "prefix_caching", "one_batch", "offline_throughput")

TAIL_LINES = 20


class NoMetricsError(ValueError):
    """No benchmark result in the output. `.tail` holds the last ~20 non-empty lines of the output (for the error message)."""

    def __init__(self, message: str, tail: str = "", *, all_failed: bool = False):
        super().__init__(message)
        self.tail = tail
        self.all_failed = all_failed  # a result was printed, but it says no request succeeded


def _tail(text: str | None, n: int = TAIL_LINES) -> str:
    if not text:
        return ""
    return "\n".join([line for line in clean_lines(text) if line][-n:])


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
    lines = clean_lines(text or "")
    tail = _tail(text)
    candidates = [kind] if kind else kinds_by_position(lines)
    for candidate in candidates:
        found = TEXT_PARSERS[candidate](lines)
        if found:
            return _finish(candidate, found, num_prompts, tail)
    what = f"{kind} benchmark result" if kind else "benchmark result"
    raise NoMetricsError(f"no {what} in the output", tail)


def parse_json(data: dict, kind: str | None = None, *, num_prompts: int | None = None) -> dict:
    """Metrics of a benchmark's result JSON (vLLM --save-result/--output-json, SGLang JSONL records).

    A list (the records of a JSONL file) is read as its last record that holds a result.
    """
    _check_kind(kind)
    records = data if isinstance(data, list) else [data]
    for record in reversed(records):
        if not isinstance(record, dict):
            continue
        found_kind = json_kind(record)
        if found_kind is None or (kind is not None and found_kind != kind):
            continue
        metrics = json_metrics(found_kind, record)
        if num_prompts is None and found_kind == "serving":
            num_prompts = json_number(record.get("num_prompts"))  # vLLM's JSON echoes --num-prompts
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

