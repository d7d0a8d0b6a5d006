"""Sampling from logits (vLLM: vllm/model_executor/layers/sampler.py): temperature, then a draw."""

from __future__ import annotations

import math

import numpy as np


def sample(logits: np.ndarray, temperatures: list[float], rng: np.random.Generator) -> list[int]:
    out = []
    for row, temp in zip(logits, temperatures):
        values = row.tolist()
        if temp == 0.0:
            out.append(max(range(len(values)), key=values.__getitem__))
            continue
        peak = max(values)
        weights = [math.exp((v - peak) / temp) for v in values]
        total = sum(weights)
        r = rng.random() * total
        acc = 0.0
        choice = len(weights) - 1
        for i, w in enumerate(weights):
            acc += w
            if acc >= r:
                choice = i
                break
        out.append(choice)
    return out
