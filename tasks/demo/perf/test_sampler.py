"""A performance test of minillm's sampler in ISO-Bench's convention (the `script` benchmark kind).

    python test_sampler.py [--reference | --eqcheck] [--prefix P]

Times one call of the sampler on a batch of 64 rows of logits over the model's 1024-token vocabulary, half
greedy and half sampled at temperature 1.0 (as benchmark_latency.py samples), and prints one JSON line with
avg_ms and p50_ms. `--reference` stores the greedy rows' tokens to {P}_{IMPL_TAG}_{COMMIT_HASH}_reference.json;
`--eqcheck` compares with that file and exits 1 when they differ (the sampled rows depend on the order of
random draws, which an optimization may change; the greedy ones may not change).
"""

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.getcwd())  # the arm's tree: its minillm, as an installed engine would be

import numpy as np  # noqa: E402
from minillm.sampler import Sampler  # noqa: E402
from minillm.sampling_params import SamplingParams  # noqa: E402

ROWS, VOCAB, WARMUP, ITERS = 64, 1024, 2, 10


def setup():
    logits = np.random.default_rng(0).standard_normal((ROWS, VOCAB)).astype(np.float32) * 3
    params = [SamplingParams(temperature=0.0 if i % 2 == 0 else 1.0) for i in range(ROWS)]
    return logits, params


def experiment(logits, params):
    return Sampler(seed=0)(logits, params)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reference", action="store_true")
    parser.add_argument("--eqcheck", action="store_true")
    parser.add_argument("--prefix", default="sampler")
    args = parser.parse_args()
    logits, params = setup()
    for _ in range(WARMUP):
        experiment(logits, params)
    times, result = [], None
    for _ in range(ITERS):
        start = time.perf_counter()
        result = experiment(logits, params)
        times.append((time.perf_counter() - start) * 1000)
    greedy = [int(t) for t, p in zip(result, params) if p.greedy]
    reference = f"{args.prefix}_{os.environ.get('IMPL_TAG', 'x')}_{os.environ.get('COMMIT_HASH', 'x')}_reference.json"
    if args.reference:
        with open(reference, "w") as fh:
            json.dump(greedy, fh)
    if args.eqcheck:
        with open(reference) as fh:
            expected = json.load(fh)
        if expected != greedy:
            print(f"not equivalent: {sum(a != b for a, b in zip(expected, greedy))} of {len(greedy)} greedy tokens differ",
                  file=sys.stderr)
            sys.exit(1)
    print(json.dumps({"impl_tag": os.environ.get("IMPL_TAG"), "commit_hash": os.environ.get("COMMIT_HASH"),
                      "device": "cpu", "iters": ITERS, "warmup": WARMUP, "avg_ms": statistics.mean(times),
                      "p50_ms": statistics.median(times)}))


if __name__ == "__main__":
    main()
