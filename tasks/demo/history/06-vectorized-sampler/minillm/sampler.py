"""From logits to next tokens. Mirrors vllm/model_executor/layers/sampler.py: temperature, top-k and
top-p, then greedy or random sampling. Random draws come from one generator seeded with the engine
seed, so a run is reproducible."""

from __future__ import annotations

import numpy as np

from minillm.sampling_params import SamplingParams


class Sampler:
    def __init__(self, seed: int):
        self.generator = np.random.default_rng(seed)

    def __call__(self, logits: np.ndarray, sampling_params: list[SamplingParams]) -> list[int]:
        """One next token per row of logits [num_seqs, vocab_size], computed for the whole batch at once."""
        next_tokens = np.argmax(logits, axis=-1)
        random_rows = np.array([not params.greedy for params in sampling_params])
        if random_rows.any():
            params = [p for p, is_random in zip(sampling_params, random_rows) if is_random]
            temperatures = np.array([p.temperature for p in params])[:, None]
            probs = _softmax(logits[random_rows].astype(np.float64) / temperatures)
            top_k = np.array([p.top_k for p in params])
            top_p = np.array([p.top_p for p in params])
            if (top_k != -1).any() or (top_p < 1.0).any():
                probs = _apply_top_k_top_p(probs, top_k, top_p)
            next_tokens[random_rows] = self._sample(probs)
        return next_tokens.tolist()

    def _sample(self, probs: np.ndarray) -> np.ndarray:
        """Inverse-CDF sampling, per row: the first token at which the cumulative probability passes
        a uniform draw."""
        u = self.generator.random(len(probs))
        cumulative = np.cumsum(probs, axis=-1)
        return np.minimum((cumulative <= u[:, None]).sum(axis=-1), probs.shape[-1] - 1)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _apply_top_k_top_p(probs: np.ndarray, top_k: np.ndarray, top_p: np.ndarray) -> np.ndarray:
    """Per row, zero out all but the top_k most likely tokens and the smallest set whose mass reaches
    top_p, then renormalize."""
    order = np.argsort(-probs, axis=-1, kind="stable")
    sorted_probs = np.take_along_axis(probs, order, axis=-1)
    rank = np.arange(probs.shape[-1])
    keep = (top_k[:, None] == -1) | (rank < top_k[:, None])
    keep &= np.cumsum(sorted_probs, axis=-1) - sorted_probs < top_p[:, None]
    filtered = np.zeros_like(probs)
    np.put_along_axis(filtered, order, np.where(keep, sorted_probs, 0.0), axis=-1)
    return filtered / filtered.sum(axis=-1, keepdims=True)
