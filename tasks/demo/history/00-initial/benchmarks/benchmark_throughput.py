"""Offline throughput, in the style of vLLM's benchmarks/benchmark_throughput.py."""

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
    parser = argparse.ArgumentParser(description="Benchmark the throughput.")
    parser.add_argument("--model", default="demo-tiny")
    parser.add_argument("--input-len", type=int, default=32)
    parser.add_argument("--output-len", type=int, default=32)
    parser.add_argument("--num-prompts", type=int, default=128)
    parser.add_argument("--num-blocks", type=int, default=8192)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-json", default=None)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    prompts = [rng.integers(0, VOCAB_SIZE, args.input_len).tolist() for _ in range(args.num_prompts)]
    llm = LLM(args.model, seed=args.seed, num_blocks=args.num_blocks)
    start = time.perf_counter()
    llm.generate(prompts, SamplingParams(max_tokens=args.output_len, temperature=1.0))
    elapsed = time.perf_counter() - start
    total_tokens = args.num_prompts * (args.input_len + args.output_len)
    output_tokens = args.num_prompts * args.output_len
    print(f"Throughput: {args.num_prompts / elapsed:.2f} requests/s, {total_tokens / elapsed:.2f} total tokens/s, "
          f"{output_tokens / elapsed:.2f} output tokens/s")
    if args.output_json:
        with open(args.output_json, "w") as fh:
            json.dump({"elapsed_time": elapsed, "num_requests": args.num_prompts, "total_num_tokens": total_tokens,
                       "requests_per_second": args.num_prompts / elapsed, "tokens_per_second": total_tokens / elapsed}, fh, indent=4)


if __name__ == "__main__":
    main()
