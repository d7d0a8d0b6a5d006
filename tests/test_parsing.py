"""Tests of isobench_ray.engines.parsing against real benchmark outputs (tests/fixtures/bench_outputs, see SOURCES.md)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from isobench_ray.engines.parsing import (
    BENCH_KINDS,
    NoMetricsError,
    parse_json,
    parse_metrics,
    parse_text,
)

FIXTURES = Path(__file__).parent / "fixtures" / "bench_outputs"


def _cases() -> list[tuple[str, Path, dict]]:
    cases = []
    for sidecar in sorted(FIXTURES.glob("*.expected.json")):
        name = sidecar.name[: -len(".expected.json")]
        data = next(p for p in (FIXTURES / f"{name}.{ext}" for ext in ("txt", "json", "jsonl")) if p.exists())
        cases.append((name, data, json.loads(sidecar.read_text())))
    return cases


CASES = _cases()


def _read(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def _same(got: dict, want: dict) -> None:
    """Exact equality of key sets and values (nan equals nan)."""
    assert set(got) == set(want), f"extra {sorted(set(got) - set(want))}, missing {sorted(set(want) - set(got))}"
    for key, value in want.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(got[key]), key
        else:
            assert got[key] == value, f"{key}: got {got[key]!r}, want {value!r}"


# ---------------------------------------------------------------------------------------------------
# Every real fixture
# ---------------------------------------------------------------------------------------------------

def test_fixture_collection_covers_every_kind():
    assert len(CASES) >= 15
    assert {want["kind"] for _, _, want in CASES} == set(BENCH_KINDS)


@pytest.mark.parametrize("name,path,expected", CASES, ids=[c[0] for c in CASES])
def test_fixture(name: str, path: Path, expected: dict):
    want = dict(expected)
    num_prompts = want.pop("_num_prompts", None)
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        got = parse_json(data, num_prompts=num_prompts)
        assert parse_metrics(json_data=data, num_prompts=num_prompts) == got
    else:  # console text, or a JSONL file read as text (sglang.bench_serving --output-file)
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":  # the same records as JSON give the same answer
            assert parse_json([json.loads(line) for line in text.splitlines()], num_prompts=num_prompts) == \
                parse_text(text, num_prompts=num_prompts)
        got = parse_text(text, num_prompts=num_prompts)
        _same(parse_text(text, want["kind"], num_prompts=num_prompts), got)  # explicit kind: same answer
        assert parse_metrics(text, num_prompts=num_prompts) == got
    _same(got, want)


# ---------------------------------------------------------------------------------------------------
# Noise that real logs carry
# ---------------------------------------------------------------------------------------------------

def test_ansi_colours_and_tqdm_carriage_returns():
    clean = _read("vllm_serving_2024-07_printed-twice.txt")
    updates = "\r".join(f" {p:>2}%|{'#' * (p // 10):<10}| {p}/100 [00:0{p // 50}<00:00, 45.72it/s]"
                        for p in (1, 37, 88, 100))
    noisy = []
    for line in clean.splitlines():
        if line.startswith("INFO:"):
            noisy.append(f"\x1b[32mINFO\x1b[0m:{line[5:]}")
        elif line.startswith("=" * 12 + " Serving"):
            noisy.append(updates + line)  # the bar glued to the header, as in vLLM PR #10880
        else:
            noisy.append(f"\x1b[1m{line}\x1b[0m")
    got = parse_text("\n".join(noisy))
    assert got == parse_text(clean)
    assert got["mean_ttft_ms"] == 890.13 and got["completed"] == 100


def test_tqdm_updates_on_one_line_then_the_block():
    block = _read("vllm_serving_2024-12_kubeai.txt")
    bars = ("  0%|          | 0/940 [00:00<?, ?it/s]\r 50%|#####     | 470/940 [06:43<06:43,  1.17it/s]"
            "\r100%|##########| 940/940 [13:26<00:00,  1.17it/s]\n")
    text = bars + block
    assert parse_text(text) == parse_text(block)


def test_launcher_line_labels():
    offline = _read("sglang_offline_2026-04_mlx.txt")
    tagged = "\n".join(f"[1,0]<stdout>:{line}" for line in offline.splitlines())  # mpirun --tag-output
    assert parse_text(tagged) == parse_text(offline)
    throughput = _read("vllm_throughput_2025-10_bench-throughput.txt")
    labelled = "\n".join(f"0: {line}" for line in throughput.splitlines())  # srun --label
    assert parse_text(labelled) == parse_text(throughput)


def test_engine_stats_lines_are_never_read_as_results():
    stats = [line for line in _read("vllm_serving_2024-07_input-tput_engine-stats.txt").splitlines()
             if "Avg prompt throughput" in line]
    assert stats, "fixture should hold vLLM's engine stats line"
    sglang_stats = ("[2026-07-04 04:32:35 TP0] Decode batch, #running-req: 68, #full token: 321920, "
                    "full token usage: 0.49, gen throughput (token/s): 2499.67, #queue-req: 0")
    text = "\n".join(stats + [sglang_stats, "INFO:     127.0.0.1:54768 - \"POST /v1/completions HTTP/1.1\" 200 OK"])
    with pytest.raises(NoMetricsError):
        parse_text(text)
    for kind in BENCH_KINDS:
        with pytest.raises(NoMetricsError):
            parse_text(text, kind)
    # And in the real log the same line sits next to the result, which is read correctly.
    got = parse_text(_read("vllm_serving_2024-07_input-tput_engine-stats.txt"))
    assert got["output_throughput"] == 2363.74 and got["input_throughput"] == 9637.16


def test_lookalike_labels_of_newer_vllm_are_not_confused():
    block = _read("vllm_serving_2026-01_failed-peak.txt").rstrip().rsplit("\n", 1)[0]  # drop the closing '===='
    # Lines vllm/benchmarks/serve.py prints with --percentile-metrics e2el,... and --probe-request-rate.
    extra = [
        "----------------End-to-end Latency----------------",
        "Mean E2EL (ms):                          7891.20",
        "Median E2EL (ms):                        7850.00",
        "P99 E2EL (ms):                           9100.50",
        "-------Queue-inclusive End-to-end Latency--------",
        "Mean E2EL incl. Client Queue (ms):       9999.99",
        "P99 E2EL incl. Client Queue (ms):        12345.67",
        "------------------Probe Requests------------------",
        "Median probe E2EL (ms):                  55.00",
        "P99 probe E2EL (ms):                     77.00",
        "=" * 50,
    ]
    got = parse_text(block + "\n" + "\n".join(extra))
    assert got["mean_e2el_ms"] == 7891.20 and got["median_e2el_ms"] == 7850.00 and got["p99_e2el_ms"] == 9100.50
    assert got["output_throughput"] == 268.31 and got["max_output_tokens_per_s"] == 352.00


def test_configurable_percentiles():
    block = _read("vllm_serving_2024-12_kubeai.txt")
    block = block.replace("P99 TTFT (ms):                           456871.18",
                          "P50 TTFT (ms):                           186161.91\n"
                          "P90 TTFT (ms):                           400000.00\n"
                          "P99.9 TTFT (ms):                         456871.18")
    got = parse_text(block)
    assert got["p50_ttft_ms"] == 186161.91 and got["p90_ttft_ms"] == 400000.00 and got["p99.9_ttft_ms"] == 456871.18
    assert "p99_ttft_ms" not in got


def test_annotated_serving_lines():
    # The real fixture (vLLM PR #26478) annotates "Failed requests"; the same kind of note on other rows.
    text = _read("vllm_serving_2025-10_annotated-line.txt")
    assert parse_text(text)["failed"] == 0
    pad = " " * 24
    for note in ("  (some annotation)", " ms", "   <-- 25% lower than main", "  # median"):
        got = parse_text(text.replace(f"Median TTFT (ms):{pad}6866.08   ", f"Median TTFT (ms):{pad}6866.08{note}"))
        assert got["median_ttft_ms"] == 6866.08, note
    # A second number after the value is no annotation: the line is not read.
    assert "median_ttft_ms" not in parse_text(text.replace("6866.08   ", "6866.08 7000.00"))


def test_serving_lines_behind_log_prefixes_and_without_header():
    want = parse_text(_read("vllm_serving_2024-07_printed-twice.txt"))
    headerless = _read("vllm_serving_2024-07_headerless-tail-cut.txt")
    for prefix in ("2024-07-19 12:00:01 ", "[stdout] ", "(bench pid=4242) ", "bench-0 | "):
        logged = "\n".join(prefix + line for line in headerless.splitlines())
        assert parse_text(logged) == want, prefix  # kind "serving" included
    # A lone "Successful requests:" line of another tool is no serving result.
    with pytest.raises(NoMetricsError):
        parse_text("[INFO] Successful requests:         15\n[INFO] Failed requests:             8\n", "serving")


def test_jsonl_record_in_a_log():
    record = _read("sglang_serving_h200-benchmarks_jsonl-infinity.jsonl").splitlines()[-1]
    block = _read("sglang_serving_2025-08_max-concurrency.txt")
    # `cat results.jsonl` after the printed block: the unrounded record wins, Infinity included.
    got = parse_text(block + record + "\n")
    assert got["request_rate"] == float("inf") and got["completed"] == 2000
    assert got["median_ttft_ms"] == 18726.9222245086
    assert parse_text("0: " + record) == got  # srun --label
    assert parse_text("2025-01-09 10:00:00 " + record) == got  # any log prefix
    # A record before the block belongs to an earlier run: the block wins.
    assert parse_text(record + "\n" + block) == parse_text(block)
    # A JSON line that is no serving record is not read.
    assert parse_text(block + '{"completed": "yes", "note": 1}\n') == parse_text(block)


# ---------------------------------------------------------------------------------------------------
# Failed requests
# ---------------------------------------------------------------------------------------------------

def _failed_peak(successful: int, failed: int | None) -> str:
    text = _read("vllm_serving_2026-01_failed-peak.txt").replace(
        "Successful requests:                     16", f"Successful requests:                     {successful}")
    failed_line = "Failed requests:                         0\n"
    return text.replace(failed_line, "" if failed is None else failed_line.replace(" 0\n", f" {failed}\n"))


def test_partial_run_from_failed_requests_line():
    got = parse_text(_failed_peak(37, 63))
    assert got["completed"] == 37 and got["failed"] == 63 and got["partial"] is True
    # The printed count wins over one derived from --num-prompts.
    assert parse_text(_failed_peak(37, 63), num_prompts=200)["failed"] == 63


def test_partial_run_from_num_prompts():
    got = parse_text(_failed_peak(37, None), num_prompts=100)
    assert got["failed"] == 63 and got["partial"] is True
    whole = parse_text(_failed_peak(16, None), num_prompts=16)
    assert whole["failed"] == 0 and "partial" not in whole
    assert "failed" not in parse_text(_failed_peak(16, None))  # nothing to derive it from


def test_zero_successful_requests():
    with pytest.raises(NoMetricsError, match="all requests failed") as info:
        parse_text(_failed_peak(0, 16))
    assert info.value.all_failed and "P99 ITL (ms):" in info.value.tail
    with pytest.raises(NoMetricsError, match="all requests failed"):
        parse_text(_failed_peak(0, None), num_prompts=16)
    with pytest.raises(NoMetricsError, match="all requests failed"):
        parse_json({"completed": 0, "duration": 1.0, "request_throughput": 0.0, "mean_ttft_ms": 0.0})


# ---------------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------------

def test_inf_and_nan():
    pad = " " * 14
    text = (_read("vllm_serving_2024-12_kubeai.txt")
            .replace(f"Request throughput (req/s):{pad}1.17 ", f"Request throughput (req/s):{pad}inf ")
            .replace(f"Mean ITL (ms):{pad}{' ' * 13}310.87 ", f"Mean ITL (ms):{pad}{' ' * 13}nan "))
    got = parse_text(text)
    assert got["request_throughput"] == float("inf") and math.isnan(got["mean_itl_ms"])
    latency = parse_text("Avg latency: nan seconds\n10% percentile latency: nan seconds\n")
    assert math.isnan(latency["avg_latency"]) and math.isnan(latency["percentiles"]["10"])
    assert parse_json({"avg_latency": float("inf"), "percentiles": {"50": float("nan")}})["avg_latency"] == float("inf")


def test_last_complete_block_wins():
    # Runner echo after the real block lacks "Successful requests": the real block is used.
    twice = parse_text(_read("vllm_serving_2024-07_printed-twice.txt"))
    assert twice["completed"] == 100 and twice["duration"] == 2.19
    # Two complete runs in one log: the later one.
    assert parse_text(_read("sglang_serving_2024_fork-two-rates.txt"))["request_rate"] == 4.0
    # A block cut off after its header does not hide the complete one before it.
    cut = _read("vllm_serving_2024-12_kubeai.txt") + "============ Serving Benchmark Result ============\n"
    assert parse_text(cut)["completed"] == 940


# ---------------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------------

# Keys vLLM's benchmark_serving.py writes with --save-result (benchmark() result merged into result_json).
VLLM_SERVING_JSON = {
    "date": "20250101-120000", "backend": "vllm", "model_id": "meta-llama/Llama-3.1-8B-Instruct", "num_prompts": 100,
    "request_rate": "inf", "burstiness": 1.0, "max_concurrency": None, "duration": 2.1877, "completed": 100,
    "total_input_tokens": 29800, "total_output_tokens": 3100, "request_throughput": 45.7101, "request_goodput:": None,
    "output_throughput": 1417.01, "total_token_throughput": 15038.4, "mean_ttft_ms": 890.127, "median_ttft_ms": 869.171,
    "std_ttft_ms": 120.5, "p99_ttft_ms": 1168.559, "mean_tpot_ms": 42.17, "median_tpot_ms": 42.85, "std_tpot_ms": 4.2,
    "p99_tpot_ms": 52.65, "mean_itl_ms": 40.74, "median_itl_ms": 33.53, "std_itl_ms": 50.1, "p99_itl_ms": 437.28,
    "input_lens": [298] * 3, "ttfts": [0.9, 0.8, 0.85],
}


def test_json_wins_over_text():
    text = _read("vllm_serving_2024-07_printed-twice.txt")
    got = parse_metrics(text, VLLM_SERVING_JSON)
    assert got["mean_ttft_ms"] == 890.127 and got["request_throughput"] == 45.7101
    assert got["request_rate"] == float("inf") and got["failed"] == 0  # JSON echoes num_prompts
    assert not {"date", "backend", "input_lens", "ttfts", "max_concurrency", "request_goodput"} & set(got)
    # A JSON without a result falls back to the text.
    assert parse_metrics(text, {"date": "20250101-120000", "backend": "vllm"}) == parse_text(text)
    # A JSON result of another kind than the one asked for is no result either.
    assert parse_metrics(text, {"avg_latency": 0.5}, kind="serving") == parse_text(text)
    # A JSON that holds a result saying every request failed is final.
    with pytest.raises(NoMetricsError, match="all requests failed"):
        parse_metrics(text, {**VLLM_SERVING_JSON, "completed": 0})


def test_json_other_kinds():
    # vllm benchmark_latency.py --output-json (json.dump turns the int percentile keys into strings).
    latency = parse_json({"avg_latency": 0.45, "std_latency": 0.01, "latencies": [0.44, 0.46],
                          "percentiles": {"10": 0.44, "50": 0.45, "99": 0.46}})
    assert latency == {"kind": "latency", "avg_latency": 0.45, "std_latency": 0.01,
                       "percentiles": {"10": 0.44, "50": 0.45, "99": 0.46}}
    # vllm benchmark_throughput.py --output-json
    throughput = parse_json({"elapsed_time": 12.2, "num_requests": 1000, "total_num_tokens": 255000,
                             "requests_per_second": 81.74, "tokens_per_second": 20926.37})
    assert throughput == {"kind": "throughput", "elapsed_time": 12.2, "num_requests": 1000, "total_num_tokens": 255000,
                          "requests_per_second": 81.74, "tokens_per_second": 20926.37}
    # sglang bench_offline_throughput --result-filename (throughput_test_once's measurement_results)
    offline = parse_json({"backend": "engine", "successful_requests": 1, "total_latency": 1.7601,
                          "total_input_tokens": 17, "total_output_tokens": 244, "request_throughput": 0.5681,
                          "input_throughput": 9.658, "output_throughput": 138.62, "total_throughput": 148.28})
    assert offline == {"kind": "offline_throughput", "num_requests": 1, "elapsed_time": 1.7601,
                       "total_prompt_tokens": 17, "total_output_tokens": 244, "requests_per_second": 0.5681,
                       "input_tokens_per_second": 9.658, "output_tokens_per_second": 138.62, "tokens_per_second": 148.28}


def test_one_batch_jsonl_record_wins_over_text():
    # sglang bench_one_batch --result-filename: one record per run, the keys of latency_test_run_once().
    record = {"run_name": "default", "batch_size": 1, "input_len": 128, "output_len": 256,
              "prefill_latency": 0.196354, "prefill_throughput": 651.89, "median_decode_latency": 0.020981,
              "median_decode_throughput": 47.66, "total_latency": 5.5371, "overall_throughput": 69.35}
    text = _read("sglang_one-batch_2025-01_deepseek-r1.txt")
    got = parse_metrics(text, record)
    assert got == {"kind": "one_batch", **{k: v for k, v in record.items() if k not in
                                           ("run_name", "batch_size", "input_len", "output_len")}}
    # Several records (a sweep): the last one.
    assert parse_json([{**record, "total_latency": 1.0}, record])["total_latency"] == 5.5371


# ---------------------------------------------------------------------------------------------------
# No result
# ---------------------------------------------------------------------------------------------------

def test_no_result_has_a_tail():
    text = _read("upstream_ad8d696a_argparse-error.log")  # the runner's log goes on after the error
    with pytest.raises(NoMetricsError) as info:
        parse_metrics(text, num_prompts=100)
    assert isinstance(info.value, ValueError)
    non_empty = [line.strip() for line in text.splitlines() if line.strip()]
    assert info.value.tail.splitlines() == non_empty[-20:]
    # Cut where the benchmark itself stopped, the tail shows why.
    cut = text[: text.index("Unable to find image")]
    with pytest.raises(NoMetricsError) as info:
        parse_text(cut, "throughput")
    assert info.value.tail.splitlines()[-1].endswith("unrecognized arguments: python benchmarks/benchmark_serving.py")


def test_nothing_given():
    with pytest.raises(NoMetricsError):
        parse_metrics()
    with pytest.raises(NoMetricsError):
        parse_text("")


def test_explicit_wrong_kind():
    text = _read("vllm_serving_2025-05_bench-serve.txt")
    for kind in set(BENCH_KINDS) - {"serving"}:
        with pytest.raises(NoMetricsError, match=kind):
            parse_text(text, kind)
    with pytest.raises(ValueError):
        parse_text(text, "benchmark_serving")


def test_explicit_kind_restricts_a_mixed_log():
    text = _read("vllm_throughput_2026-02_rocm.txt") + _read("vllm_serving_2025-05_bench-serve.txt")
    assert parse_text(text)["kind"] == "serving"
    assert parse_text(text, "throughput")["requests_per_second"] == 25.16


def test_one_batch_warmup_is_not_the_result():
    text = _read("sglang_one-batch_2026_decode-steps.txt")
    crashed = (text[: text.index("Benchmark ...")]
               + "Benchmark ...\nTraceback (most recent call last):\nRuntimeError: CUDA out of memory\n")
    with pytest.raises(NoMetricsError) as info:
        parse_text(crashed)
    assert "CUDA out of memory" in info.value.tail


def test_prefix_caching_warmup_only_is_no_result():
    text = _read("vllm_prefix-caching_2024_warmup.txt")
    with pytest.raises(NoMetricsError):
        parse_text(text[: text.index("------start generating------")])
