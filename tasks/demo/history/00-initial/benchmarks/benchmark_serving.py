"""Online serving benchmark, in the style of vLLM's benchmarks/benchmark_serving.py.

Sends streaming /v1/completions requests (random prompts of fixed length, all at once with
--request-rate inf, else Poisson arrivals) and prints vLLM's "Serving Benchmark Result" block.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per benchmark: BLAS threads would fight the server
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import http.client
import json
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from minillm.tokenizer import VOCAB_SIZE, Tokenizer  # noqa: E402


def random_prompts(n: int, input_len: int, seed: int) -> list[str]:
    tok = Tokenizer()
    rng = random.Random(seed)
    words = [p for p in tok.vocab if not p.startswith("##")]
    return [" ".join(rng.choice(words) for _ in range(input_len)) for _ in range(n)]


def send(host: str, port: int, model: str, prompt: str, output_len: int, start_at: float) -> dict:
    delay = start_at - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
    out = {"success": False, "ttft": 0.0, "itl": [], "latency": 0.0, "output_tokens": 0, "error": ""}
    start = time.perf_counter()
    try:
        conn = http.client.HTTPConnection(host, port, timeout=600)
        body = json.dumps({"model": model, "prompt": prompt, "max_tokens": output_len, "temperature": 1.0, "stream": True})
        conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            out["error"] = f"HTTP {resp.status}"
            return out
        last = start
        while True:
            line = resp.readline()
            if not line:
                break
            line = line.strip()
            if not line.startswith(b"data: "):
                continue
            if line == b"data: [DONE]":
                out["success"] = True
                break
            now = time.perf_counter()
            if out["output_tokens"] == 0:
                out["ttft"] = now - start
            else:
                out["itl"].append(now - last)
            last = now
            out["output_tokens"] += 1
        out["latency"] = time.perf_counter() - start
        conn.close()
    except Exception as exc:  # a failed request is counted, not fatal
        out["error"] = repr(exc)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark the online serving throughput.")
    parser.add_argument("--backend", default="vllm")
    parser.add_argument("--model", default="demo-tiny")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--dataset-name", default="random", choices=["random"])
    parser.add_argument("--random-input-len", type=int, default=64)
    parser.add_argument("--random-output-len", type=int, default=32)
    parser.add_argument("--num-prompts", type=int, default=64)
    parser.add_argument("--request-rate", type=float, default=float("inf"))
    parser.add_argument("--max-concurrency", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-result", action="store_true")
    parser.add_argument("--result-filename", default=None)
    args = parser.parse_args()
    host, port = args.host, args.port
    if args.base_url:
        hostport = args.base_url.split("://", 1)[-1].rstrip("/")
        host, port = hostport.split(":")[0], int(hostport.split(":")[1])

    prompts = random_prompts(args.num_prompts, args.random_input_len, args.seed)
    rng = np.random.default_rng(args.seed)
    gaps = np.zeros(len(prompts)) if args.request_rate == float("inf") else rng.exponential(1.0 / args.request_rate, len(prompts))
    start = time.perf_counter() + 0.05
    arrivals = start + np.cumsum(gaps)
    with ThreadPoolExecutor(max_workers=args.max_concurrency or len(prompts)) as pool:
        results = list(pool.map(lambda i: send(host, port, args.model, prompts[i], args.random_output_len, arrivals[i]), range(len(prompts))))
    duration = time.perf_counter() - start

    ok = [r for r in results if r["success"]]
    ttfts = [r["ttft"] * 1000 for r in ok]
    tpots = [(r["latency"] - r["ttft"]) / (r["output_tokens"] - 1) * 1000 for r in ok if r["output_tokens"] > 1]
    itls = [x * 1000 for r in ok for x in r["itl"]]
    e2els = [r["latency"] * 1000 for r in ok]
    total_input = args.random_input_len * len(ok)
    total_output = sum(r["output_tokens"] for r in ok)
    stat = lambda xs, f: float(f(xs)) if xs else 0.0
    m = {
        "completed": len(ok), "total_input_tokens": total_input, "total_output_tokens": total_output, "duration": duration,
        "request_throughput": len(ok) / duration, "output_throughput": total_output / duration,
        "total_token_throughput": (total_input + total_output) / duration,
    }
    for name, xs in (("ttft", ttfts), ("tpot", tpots), ("itl", itls), ("e2el", e2els)):
        m[f"mean_{name}_ms"], m[f"median_{name}_ms"] = stat(xs, np.mean), stat(xs, np.median)
        m[f"std_{name}_ms"], m[f"p99_{name}_ms"] = stat(xs, np.std), stat(xs, lambda v: np.percentile(v, 99))

    print("{s:{c}^{n}}".format(s=" Serving Benchmark Result ", n=50, c="="))
    print("{:<40} {:<10}".format("Successful requests:", m["completed"]))
    print("{:<40} {:<10.2f}".format("Benchmark duration (s):", duration))
    print("{:<40} {:<10}".format("Total input tokens:", total_input))
    print("{:<40} {:<10}".format("Total generated tokens:", total_output))
    print("{:<40} {:<10.2f}".format("Request throughput (req/s):", m["request_throughput"]))
    print("{:<40} {:<10.2f}".format("Output token throughput (tok/s):", m["output_throughput"]))
    print("{:<40} {:<10.2f}".format("Total Token throughput (tok/s):", m["total_token_throughput"]))
    for title, name, label in (("Time to First Token", "ttft", "TTFT"), ("Time per Output Token (excl. 1st token)", "tpot", "TPOT"),
                               ("Inter-token Latency", "itl", "ITL")):
        print("{s:{c}^{n}}".format(s=title, n=50, c="-"))
        print("{:<40} {:<10.2f}".format(f"Mean {label} (ms):", m[f"mean_{name}_ms"]))
        print("{:<40} {:<10.2f}".format(f"Median {label} (ms):", m[f"median_{name}_ms"]))
        print("{:<40} {:<10.2f}".format(f"P99 {label} (ms):", m[f"p99_{name}_ms"]))
    print("=" * 50)
    failed = [r["error"] for r in results if not r["success"]]
    if failed:
        print(f"{len(failed)} requests failed, first error: {failed[0]}", file=sys.stderr)
    if args.save_result:
        with open(args.result_filename or "serving-result.json", "w") as fh:
            json.dump(m, fh, indent=2)


if __name__ == "__main__":
    main()
