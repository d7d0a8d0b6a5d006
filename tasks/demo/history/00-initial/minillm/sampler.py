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
        """One next token per row of logits [num_seqs, vocab_size]."""
        next_tokens = []
        for row, params in zip(logits, sampling_params):
            if params.greedy:
                next_tokens.append(int(np.argmax(row)))
                continue
            probs = _softmax(row.astype(np.float64) / params.temperature)
            if params.top_k != -1 or params.top_p < 1.0:
                probs = _apply_top_k_top_p(probs, params.top_k, params.top_p)
            next_tokens.append(self._sample(probs))
        return next_tokens

    def _sample(self, probs: np.ndarray) -> int:
        """Inverse-CDF sampling: the first token at which the cumulative probability passes a uniform draw."""
        u = self.generator.random()
        cumulative = 0.0
        for token_id, p in enumerate(probs):
            cumulative += p
            if cumulative > u:
                return token_id
        return len(probs) - 1  # u fell in the rounding error of the last bucket


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def _apply_top_k_top_p(probs: np.ndarray, top_k: int, top_p: float) -> np.ndarray:
    """Zero out all but the top_k most likely tokens and the smallest set whose mass reaches top_p,
    then renormalize."""
    order = np.argsort(-probs, kind="stable")
    keep = np.ones(len(probs), dtype=bool)
    if top_k != -1:
        keep[top_k:] = False
    if top_p < 1.0:
        mass_before = np.cumsum(probs[order]) - probs[order]
        keep &= mass_before < top_p
    filtered = np.zeros_like(probs)
    filtered[order[keep]] = probs[order[keep]]
    return filtered / filtered.sum()
