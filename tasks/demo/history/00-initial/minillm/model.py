"""A tiny random-weight language model (vLLM: vllm/model_executor/models/*). Weights come from a seed."""

from __future__ import annotations

import numpy as np

from minillm.tokenizer import VOCAB_SIZE

MODELS = {"demo-tiny": {"hidden": 64, "seed": 0}}


class TinyLM:
    def __init__(self, name: str = "demo-tiny") -> None:
        if name not in MODELS:
            raise ValueError(f"unknown model {name!r}; available: {', '.join(MODELS)}")
        cfg = MODELS[name]
        rng = np.random.default_rng(cfg["seed"])
        h = cfg["hidden"]
        self.embed = rng.standard_normal((VOCAB_SIZE, h)).astype(np.float32) / np.sqrt(h)
        self.w_mix = rng.standard_normal((h, h)).astype(np.float32) / np.sqrt(h)
        self.w_out = rng.standard_normal((h, VOCAB_SIZE)).astype(np.float32)

    def forward(self, last_tokens: np.ndarray, context: np.ndarray) -> np.ndarray:
        """Logits [batch, vocab] from each sequence's last token and a summary of its KV context."""
        x = np.tanh((self.embed[last_tokens] + context) @ self.w_mix)
        return x @ self.w_out

    def context_of(self, token_ids: list[int]) -> np.ndarray:
        return self.embed[np.asarray(token_ids[-16:])].mean(axis=0)
