"""Sampling from logits (vLLM: vllm/model_executor/layers/sampler.py): temperature, then a draw."""

from __future__ import annotations

import numpy as np


def sample(logits: np.ndarray, temperatures: list[float], rng: np.random.Generator) -> list[int]:
    temps = np.asarray(temperatures, dtype=np.float64)[:, None]
    greedy = temps[:, 0] == 0.0
    scaled = (logits - logits.max(axis=1, keepdims=True)) / np.where(temps == 0.0, 1.0, temps)
    cdf = np.cumsum(np.exp(scaled), axis=1)
    draws = rng.random(len(logits))[:, None] * cdf[:, -1:]
    choice = np.minimum((cdf < draws).sum(axis=1), logits.shape[1] - 1)
    if greedy.any():
        choice[greedy] = logits[greedy].argmax(axis=1)
    return choice.tolist()
