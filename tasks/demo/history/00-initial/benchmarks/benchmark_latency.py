"""Benchmark the latency of processing a single batch of requests till completion.

Mirrors vLLM's benchmarks/benchmark_latency.py: offline, no server. Every iteration generates
output-len tokens for batch-size prompts of input-len random tokens, with random sampling.

    python benchmarks/benchmark_latency.py --model demo-tiny --batch-size 8 --input-len 32 --output-len 128
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/...` from a checkout

from minillm import LLM, SamplingParams  # noqa: E402  (before NumPy: minillm sets its thread count)

import numpy as np  # noqa: E402


def main(args: argparse.Namespace) -> None:
    print(args)
    llm = LLM(model=args.model, seed=args.seed, enable_prefix_caching=args.enable_prefix_caching)
    sampling_params = SamplingParams(n=args.n, temperature=1.0, top_p=1.0, ignore_eos=True,
                                     max_tokens=args.output_len)
    print(sampling_params)
    rng = np.random.default_rng(args.seed)
    vocab_size = llm.get_tokenizer().vocab_size
    dummy_prompt_token_ids = rng.integers(vocab_size, size=(args.batch_size, args.input_len)).tolist()

    def run_to_completion() -> float:
        start_time = time.perf_counter()
        llm.generate(prompt_token_ids=dummy_prompt_token_ids, sampling_params=sampling_params)
        return time.perf_counter() - start_time

    print("Warming up...")
    for _ in range(args.num_iters_warmup):
        run_to_completion()

    latencies = np.array([run_to_completion() for _ in range(args.num_iters)])
    percentages = [10, 25, 50, 75, 90, 99]
    percentiles = np.percentile(latencies, percentages)
    print(f"Avg latency: {np.mean(latencies)} seconds")
    for percentage, percentile in zip(percentages, percentiles):
        print(f"{percentage}% percentile latency: {percentile} seconds")

    if args.output_json:
        results = {
            "avg_latency": float(np.mean(latencies)),
            "latencies": latencies.tolist(),
            "percentiles": dict(zip(percentages, percentiles.tolist())),
        }
        with open(args.output_json, "w") as f:
            json.dump(results, f, indent=4)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Benchmark the latency of processing a single batch of "
                                                 "requests till completion.")
    parser.add_argument("--model", type=str, default="demo-tiny")
    parser.add_argument("--input-len", type=int, default=32)
    parser.add_argument("--output-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--n", type=int, default=1, help="number of generated sequences per prompt")
    parser.add_argument("--num-iters-warmup", type=int, default=10, help="iterations to run before measuring")
    parser.add_argument("--num-iters", type=int, default=30, help="iterations to measure")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--enable-prefix-caching", action="store_true")
    parser.add_argument("--output-json", type=str, default=None, help="path to save the latency results as JSON")
    main(parser.parse_args())
