"""Tokenizer and streaming detokenizer (vLLM: transformers tokenizer + vllm/transformers_utils/detokenizer.py).

The vocabulary is synthetic and fixed: every id maps to a short word piece; pieces starting with "##"
continue the previous word, the others start a new one.
"""

from __future__ import annotations

import numpy as np

VOCAB_SIZE = 4096
_SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "po", "qu", "da", "fe", "gi", "ho", "ju"]


def _build_vocab() -> list[str]:
    rng = np.random.default_rng(1234)
    vocab = []
    for i in range(VOCAB_SIZE):
        n = 1 + int(rng.integers(0, 3))
        piece = "".join(_SYLLABLES[int(j)] for j in rng.integers(0, len(_SYLLABLES), n))
        vocab.append(("##" + piece) if i % 3 == 2 else piece)
    return vocab


class Tokenizer:
    def __init__(self) -> None:
        self.vocab = _build_vocab()
        self.index = {piece: i for i, piece in enumerate(self.vocab) if not piece.startswith("##")}

    def encode(self, text: str) -> list[int]:
        return [self.index.get(word, hash(word) % VOCAB_SIZE) for word in text.split()]

    def decode(self, ids: list[int]) -> str:
        words: list[str] = []
        for i in ids:
            piece = self.vocab[i]
            if piece.startswith("##") and words:
                words[-1] = words[-1] + piece[2:]
            else:
                words.append(piece.lstrip("#"))
        return " ".join(words)


class Detokenizer:
    """Turns a growing list of output ids into the text delta to stream after each step."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer

    def decode_delta(self, seq) -> str:
        # Only the token added by this step is decoded; a "##" piece continues the last word.
        piece = self.tokenizer.vocab[seq.output_ids[-1]]
        if piece.startswith("##") and seq.output_text:
            delta = piece[2:]
        else:
            delta = (" " if seq.output_text else "") + piece.lstrip("#")
        seq.output_text += delta
        return delta
