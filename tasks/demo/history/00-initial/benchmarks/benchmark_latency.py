"""Latency of one batch, end to end, in the style of vLLM's benchmarks/benchmark_latency.py."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per benchmark: BLAS threads would fight the server
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from minillm.engine import SamplingParams  # noqa: E402
from minillm.entrypoints.llm import LLM  # noqa: E402
from minillm.tokenizer import VOCAB_SIZE  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark the latency of processing a single batch.")
    parser.add_argument("--model", default="demo-tiny")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--input-len", type=int, default=32)
    parser.add_argument("--output-len", type=int, default=64)
    parser.add_argument("--num-iters-warmup", type=int, default=1)
    parser.add_argument("--num-iters", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-json", default=None)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    prompts = [rng.integers(0, VOCAB_SIZE, args.input_len).tolist() for _ in range(args.batch_size)]
    params = SamplingParams(max_tokens=args.output_len, temperature=1.0)

    def run_once() -> float:
        llm = LLM(args.model, seed=args.seed)
        start = time.perf_counter()
        llm.generate(prompts, params)
        return time.perf_counter() - start

    for _ in range(args.num_iters_warmup):
        run_once()
    latencies = np.array([run_once() for _ in range(args.num_iters)])
    print(f"Avg latency: {np.mean(latencies)} seconds")
    percentages = [10, 25, 50, 75, 90, 99]
    for p, v in zip(percentages, np.percentile(latencies, percentages)):
        print(f"{p}% percentile latency: {v} seconds")
    if args.output_json:
        with open(args.output_json, "w") as fh:
            json.dump({"avg_latency": float(np.mean(latencies)), "latencies": latencies.tolist(),
                       "percentiles": {str(p): float(v) for p, v in zip(percentages, np.percentile(latencies, percentages))}}, fh, indent=4)


if __name__ == "__main__":
    main()
