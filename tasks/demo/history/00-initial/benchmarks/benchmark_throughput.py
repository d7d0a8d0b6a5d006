"""Benchmark offline inference throughput.

Mirrors vLLM's benchmarks/benchmark_throughput.py for synthetic requests: num-prompts prompts of
input-len random tokens (after a shared prefix of prefix-len tokens, if given), each generating
output-len tokens with random sampling, all submitted at once.

    python benchmarks/benchmark_throughput.py --model demo-tiny --input-len 128 --output-len 128 --num-prompts 64
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/...` from a checkout

from minillm import LLM, SamplingParams  # noqa: E402
from minillm.tokenizer import get_tokenizer  # noqa: E402


def run_minillm(requests: list[tuple[list[int], int, int]], args: argparse.Namespace) -> float:
    llm = LLM(model=args.model, seed=args.seed, enable_prefix_caching=args.enable_prefix_caching,
              max_num_seqs=args.max_num_seqs)
    prompt_token_ids = [prompt for prompt, _, _ in requests]
    sampling_params = [SamplingParams(n=args.n, temperature=1.0, top_p=1.0, ignore_eos=True, max_tokens=output_len)
                       for _, _, output_len in requests]
    start = time.perf_counter()
    llm.generate(prompt_token_ids=prompt_token_ids, sampling_params=sampling_params)
    return time.perf_counter() - start


def main(args: argparse.Namespace) -> None:
    print(args)
    random.seed(args.seed)
    vocab_size = get_tokenizer(args.model).vocab_size
    prefix = [random.randrange(vocab_size) for _ in range(args.prefix_len)]
    prompt_len = args.prefix_len + args.input_len
    requests = [(prefix + [random.randrange(vocab_size) for _ in range(args.input_len)], prompt_len, args.output_len)
                for _ in range(args.num_prompts)]

    elapsed_time = run_minillm(requests, args)
    total_num_tokens = sum(prompt_len + output_len for _, prompt_len, output_len in requests)
    total_output_tokens = sum(output_len for _, _, output_len in requests)
    print(f"Throughput: {len(requests) / elapsed_time:.2f} requests/s, "
          f"{total_num_tokens / elapsed_time:.2f} total tokens/s, "
          f"{total_output_tokens / elapsed_time:.2f} output tokens/s")

    if args.output_json:
        results = {
            "elapsed_time": elapsed_time,
            "num_requests": len(requests),
            "total_num_tokens": total_num_tokens,
            "requests_per_second": len(requests) / elapsed_time,
            "tokens_per_second": total_num_tokens / elapsed_time,
        }
        with open(args.output_json, "w") as f:
            json.dump(results, f, indent=4)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Benchmark the throughput.")
    parser.add_argument("--model", type=str, default="demo-tiny")
    parser.add_argument("--input-len", type=int, default=128, help="input prompt length for each request")
    parser.add_argument("--output-len", type=int, default=128, help="output length for each request")
    parser.add_argument("--prefix-len", type=int, default=0,
                        help="tokens of a prefix that every prompt starts with, before its input-len own tokens")
    parser.add_argument("--n", type=int, default=1, help="number of generated sequences per prompt")
    parser.add_argument("--num-prompts", type=int, default=64, help="number of prompts to process")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-num-seqs", type=int, default=64, help="maximum number of sequences per batch")
    parser.add_argument("--enable-prefix-caching", action="store_true")
    parser.add_argument("--output-json", type=str, default=None, help="path to save the throughput results as JSON")
    main(parser.parse_args())
