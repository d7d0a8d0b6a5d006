"""Benchmark online serving throughput and latency.

Mirrors vLLM's benchmarks/benchmark_serving.py and the OpenAI completions client of
benchmarks/backend_request_func.py, on the standard library and NumPy: it sends the requests to a
running server, streams every response, and reports TTFT, TPOT, ITL and end-to-end latency in vLLM's
format.

On the server side:
    python -m minillm.entrypoints.openai.api_server --model demo-tiny --port 8000

On the client side:
    python benchmarks/benchmark_serving.py --backend vllm --model demo-tiny --dataset-name random \\
        --random-input-len 64 --random-output-len 32 --num-prompts 64 --request-rate inf --port 8000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import AsyncGenerator
from urllib.parse import urlsplit

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/...` from a checkout

from minillm.tokenizer import Tokenizer, get_tokenizer  # noqa: E402


@dataclass
class RequestFuncInput:
    prompt: str
    api_url: str
    prompt_len: int
    output_len: int
    model: str
    ignore_eos: bool = False


@dataclass
class RequestFuncOutput:
    generated_text: str = ""
    success: bool = False
    latency: float = 0.0
    output_tokens: int = 0
    ttft: float = 0.0  # time to first token
    itl: list[float] = field(default_factory=list)  # inter-token latencies
    prompt_len: int = 0
    error: str = ""


async def async_request_openai_completions(request_func_input: RequestFuncInput) -> RequestFuncOutput:
    """POST /v1/completions with stream=true and time every server-sent event."""
    url = urlsplit(request_func_input.api_url)
    payload = {
        "model": request_func_input.model,
        "prompt": request_func_input.prompt,
        "temperature": 0.0,
        "best_of": 1,
        "max_tokens": request_func_input.output_len,
        "logprobs": None,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": request_func_input.ignore_eos,
    }
    body = json.dumps(payload).encode()
    head = (f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
            f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    output = RequestFuncOutput(prompt_len=request_func_input.prompt_len)
    generated_text = ""
    st = time.perf_counter()
    most_recent_timestamp = st
    writer = None
    try:
        reader, writer = await asyncio.open_connection(url.hostname, url.port or 80)
        writer.write(head.encode() + body)
        await writer.drain()
        status = int((await reader.readline()).split()[1])
        while (await reader.readline()).strip():
            pass  # response headers
        if status != 200:
            output.error = f"HTTP {status}: {(await reader.read()).decode(errors='replace')}"
            return output
        done = False
        while line := await reader.readline():
            chunk = line.strip().removeprefix(b"data: ")
            if not chunk:
                continue
            if chunk == b"[DONE]":
                done = True
                break
            data = json.loads(chunk)
            if choices := data.get("choices"):
                timestamp = time.perf_counter()
                if not output.ttft:
                    output.ttft = timestamp - st
                else:
                    output.itl.append(timestamp - most_recent_timestamp)
                most_recent_timestamp = timestamp
                generated_text += choices[0].get("text") or ""
            elif usage := data.get("usage"):
                output.output_tokens = usage.get("completion_tokens")
        if done:
            output.generated_text = generated_text
            output.success = True
            output.latency = most_recent_timestamp - st
        else:
            output.error = "The stream ended before [DONE]"
    except Exception:
        output.error = "".join(traceback.format_exception(*sys.exc_info()))
    finally:
        if writer is not None:
            writer.close()
    return output


ASYNC_REQUEST_FUNCS = {
    "vllm": async_request_openai_completions,
    "openai": async_request_openai_completions,
}


@dataclass
class BenchmarkMetrics:
    completed: int
    total_input: int
    total_output: int
    request_throughput: float
    output_throughput: float
    total_token_throughput: float
    # per metric (ttft, tpot, itl, e2el): mean, median, std and the selected percentiles, in ms
    stats: dict[str, dict[str, float]]


def sample_random_requests(input_len: int, output_len: int, num_prompts: int, range_ratio: float,
                           tokenizer: Tokenizer) -> list[tuple[str, int, int]]:
    """Prompts of consecutive vocabulary words starting at a random offset, as vLLM's random dataset."""
    input_lens = np.random.randint(int(input_len * range_ratio), input_len + 1, size=num_prompts)
    output_lens = np.random.randint(int(output_len * range_ratio), output_len + 1, size=num_prompts)
    special_ids = set(tokenizer.all_special_ids)
    word_ids = [i for i in range(tokenizer.vocab_size) if i not in special_ids]
    offsets = np.random.randint(0, len(word_ids), size=num_prompts)
    input_requests = []
    for i in range(num_prompts):
        token_ids = [word_ids[(offsets[i] + i + j) % len(word_ids)] for j in range(input_lens[i])]
        input_requests.append((tokenizer.decode(token_ids), int(input_lens[i]), int(output_lens[i])))
    return input_requests


async def get_request(input_requests: list[tuple[str, int, int]],
                      request_rate: float) -> AsyncGenerator[tuple[str, int, int], None]:
    """The requests, spaced by a Poisson process of rate request_rate (all at once for inf)."""
    for request in input_requests:
        yield request
        if request_rate == float("inf"):
            continue
        await asyncio.sleep(np.random.exponential(1.0 / request_rate))


def calculate_metrics(input_requests: list[tuple[str, int, int]], outputs: list[RequestFuncOutput], dur_s: float,
                      tokenizer: Tokenizer, selected_percentiles: list[float]) -> tuple[BenchmarkMetrics, list[int]]:
    actual_output_lens: list[int] = []
    total_input = 0
    completed = 0
    samples: dict[str, list[float]] = {"ttft": [], "tpot": [], "itl": [], "e2el": []}
    for (_, prompt_len, _), output in zip(input_requests, outputs):
        if not output.success:
            actual_output_lens.append(0)
            continue
        output_len = output.output_tokens or len(tokenizer.encode(output.generated_text))
        actual_output_lens.append(output_len)
        total_input += prompt_len
        if output_len > 1:
            samples["tpot"].append((output.latency - output.ttft) / (output_len - 1))
        samples["itl"] += output.itl
        samples["ttft"].append(output.ttft)
        samples["e2el"].append(output.latency)
        completed += 1
    if completed == 0:
        warnings.warn("All requests failed. This is likely due to a misconfiguration on the benchmark arguments.",
                      stacklevel=2)
    stats = {}
    for name, values in samples.items():
        values_ms = np.array(values or [0.0]) * 1000
        stats[name] = {"mean": float(np.mean(values_ms)), "median": float(np.median(values_ms)),
                       "std": float(np.std(values_ms))}
        for p in selected_percentiles:
            stats[name][f"p{p:g}"] = float(np.percentile(values_ms, p))
    total_output = sum(actual_output_lens)
    metrics = BenchmarkMetrics(
        completed=completed, total_input=total_input, total_output=total_output,
        request_throughput=completed / dur_s, output_throughput=total_output / dur_s,
        total_token_throughput=(total_input + total_output) / dur_s, stats=stats,
    )
    return metrics, actual_output_lens


METRIC_HEADERS = {
    "ttft": ("TTFT", "Time to First Token"),
    "tpot": ("TPOT", "Time per Output Token (excl. 1st token)"),
    "itl": ("ITL", "Inter-token Latency"),
    "e2el": ("E2EL", "End-to-end Latency"),
}


async def benchmark(backend: str, api_url: str, model_id: str, tokenizer: Tokenizer,
                    input_requests: list[tuple[str, int, int]], request_rate: float, ignore_eos: bool,
                    selected_percentile_metrics: list[str], selected_percentiles: list[float]) -> dict:
    request_func = ASYNC_REQUEST_FUNCS[backend]

    print("Starting initial single prompt test run...")
    test_prompt, test_prompt_len, test_output_len = input_requests[0]
    test_output = await request_func(RequestFuncInput(test_prompt, api_url, test_prompt_len, test_output_len,
                                                      model_id, ignore_eos))
    if not test_output.success:
        raise ValueError("Initial test run failed - Please make sure benchmark arguments are correctly "
                         f"specified. Error: {test_output.error}")
    print("Initial test run completed. Starting main benchmark run...")
    print(f"Traffic request rate: {request_rate}")

    benchmark_start_time = time.perf_counter()
    tasks = []
    async for prompt, prompt_len, output_len in get_request(input_requests, request_rate):
        request_input = RequestFuncInput(prompt, api_url, prompt_len, output_len, model_id, ignore_eos)
        tasks.append(asyncio.create_task(request_func(request_input)))
    outputs: list[RequestFuncOutput] = await asyncio.gather(*tasks)
    benchmark_duration = time.perf_counter() - benchmark_start_time

    metrics, actual_output_lens = calculate_metrics(input_requests, outputs, benchmark_duration, tokenizer,
                                                    selected_percentiles)

    print("{s:{c}^{n}}".format(s=" Serving Benchmark Result ", n=50, c="="))
    print("{:<40} {:<10}".format("Successful requests:", metrics.completed))
    print("{:<40} {:<10.2f}".format("Benchmark duration (s):", benchmark_duration))
    print("{:<40} {:<10}".format("Total input tokens:", metrics.total_input))
    print("{:<40} {:<10}".format("Total generated tokens:", metrics.total_output))
    print("{:<40} {:<10.2f}".format("Request throughput (req/s):", metrics.request_throughput))
    print("{:<40} {:<10.2f}".format("Output token throughput (tok/s):", metrics.output_throughput))
    print("{:<40} {:<10.2f}".format("Total Token throughput (tok/s):", metrics.total_token_throughput))

    result = {
        "duration": benchmark_duration,
        "completed": metrics.completed,
        "total_input_tokens": metrics.total_input,
        "total_output_tokens": metrics.total_output,
        "request_throughput": metrics.request_throughput,
        "output_throughput": metrics.output_throughput,
        "total_token_throughput": metrics.total_token_throughput,
        "input_lens": [output.prompt_len for output in outputs],
        "output_lens": actual_output_lens,
        "ttfts": [output.ttft for output in outputs],
        "itls": [output.itl for output in outputs],
        "generated_texts": [output.generated_text for output in outputs],
        "errors": [output.error for output in outputs],
    }
    for name, stats in metrics.stats.items():
        for stat, value in stats.items():
            result[f"{stat}_{name}_ms"] = value
        if name not in selected_percentile_metrics:
            continue
        short, header = METRIC_HEADERS[name]
        print("{s:{c}^{n}}".format(s=header, n=50, c="-"))
        print("{:<40} {:<10.2f}".format(f"Mean {short} (ms):", stats["mean"]))
        print("{:<40} {:<10.2f}".format(f"Median {short} (ms):", stats["median"]))
        for p in selected_percentiles:
            print("{:<40} {:<10.2f}".format(f"P{p:g} {short} (ms):", stats[f"p{p:g}"]))
    print("=" * 50)
    return result


def main(args: argparse.Namespace) -> int:
    print(args)
    random.seed(args.seed)
    np.random.seed(args.seed)
    api_url = f"{args.base_url or f'http://{args.host}:{args.port}'}{args.endpoint}"
    tokenizer = get_tokenizer(args.model)
    input_requests = sample_random_requests(args.random_input_len, args.random_output_len, args.num_prompts,
                                            args.random_range_ratio, tokenizer)
    benchmark_result = asyncio.run(benchmark(
        backend=args.backend, api_url=api_url, model_id=args.model, tokenizer=tokenizer,
        input_requests=input_requests, request_rate=args.request_rate, ignore_eos=args.ignore_eos,
        selected_percentile_metrics=args.percentile_metrics.split(","),
        selected_percentiles=[float(p) for p in args.metric_percentiles.split(",")],
    ))
    if args.save_result:
        result_json = {
            "date": datetime.now().strftime("%Y%m%d-%H%M%S"),
            "backend": args.backend,
            "model_id": args.model,
            "tokenizer_id": args.model,
            "num_prompts": args.num_prompts,
            "request_rate": args.request_rate if args.request_rate < float("inf") else "inf",
            **benchmark_result,
        }
        file_name = args.result_filename or f"{args.backend}-{args.request_rate}qps-{args.model}-{result_json['date']}.json"
        if args.result_dir:
            file_name = os.path.join(args.result_dir, file_name)
        with open(file_name, "w") as f:
            json.dump(result_json, f)
    return 0 if benchmark_result["completed"] else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Benchmark the online serving throughput.")
    parser.add_argument("--backend", type=str, default="vllm", choices=list(ASYNC_REQUEST_FUNCS))
    parser.add_argument("--base-url", type=str, default=None, help="server URL, instead of --host and --port")
    parser.add_argument("--host", type=str, default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--endpoint", type=str, default="/v1/completions")
    parser.add_argument("--dataset-name", type=str, default="random", choices=["random"])
    parser.add_argument("--model", type=str, required=True)
    parser.add_argument("--num-prompts", type=int, default=1000)
    parser.add_argument("--request-rate", type=float, default=float("inf"),
                        help="requests per second, as a Poisson process; inf sends them all at once")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ignore-eos", action="store_true", help="generate output-len tokens, EOS or not")
    parser.add_argument("--save-result", action="store_true", help="write the results to a JSON file")
    parser.add_argument("--result-dir", type=str, default=None)
    parser.add_argument("--result-filename", type=str, default=None)
    parser.add_argument("--random-input-len", type=int, default=1024)
    parser.add_argument("--random-output-len", type=int, default=128)
    parser.add_argument("--random-range-ratio", type=float, default=1.0,
                        help="lengths are drawn from [len * ratio, len]")
    parser.add_argument("--percentile-metrics", type=str, default="ttft,tpot,itl",
                        help="comma-separated metrics to print: ttft, tpot, itl, e2el")
    parser.add_argument("--metric-percentiles", type=str, default="99",
                        help="comma-separated percentiles to report, e.g. 25,50,99")
    sys.exit(main(parser.parse_args()))
