"""Tokenizer with a fixed, generated word vocabulary, and the detokenizer that streaming relies on.

`Tokenizer` mirrors the slow (pure Python) Hugging Face tokenizers that vLLM loads through
vllm/transformers_utils/tokenizer.py: encode, decode, convert_ids_to_tokens, convert_tokens_to_string
and the special-token properties. Pieces follow SentencePiece: every word piece starts with "▁", which
decodes to a space. `Detokenizer` mirrors vllm/transformers_utils/detokenizer.py: after every step it
brings each sequence's output text up to date, and the server streams what was added.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from minillm.config import get_model_config

if TYPE_CHECKING:
    from minillm.sequence import Sequence

SPIECE_UNDERLINE = "▁"
_CONSONANTS = "bdfghklmnprstvz"
_VOWELS = "aeiou"


def _build_vocab(vocab_size: int, special_tokens: list[str]) -> list[str]:
    """Special tokens, then "▁word" pieces made of one or two consonant-vowel syllables.

    The words are enumerated in a fixed order (a stride through all two-syllable words after the
    one-syllable ones), so the vocabulary is the same on every machine.
    """
    syllables = [c + v for c in _CONSONANTS for v in _VOWELS]
    two = [a + b for a in syllables for b in syllables]
    stride = 7919  # prime, coprime with len(two): visits every two-syllable word once
    words = syllables + [two[(i * stride) % len(two)] for i in range(len(two))]
    num_words = vocab_size - len(special_tokens)
    if num_words > len(words):
        raise ValueError(f"vocab_size {vocab_size} is larger than the {len(words)} words this vocabulary has")
    return special_tokens + [SPIECE_UNDERLINE + w for w in words[:num_words]]


class Tokenizer:
    def __init__(self, vocab_size: int):
        self.special_tokens_map = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}
        self._id_to_token = _build_vocab(vocab_size, list(self.special_tokens_map.values()))
        self._token_to_id = {tok: i for i, tok in enumerate(self._id_to_token)}
        self.unk_token_id = self._token_to_id["<unk>"]
        self.eos_token_id = self._token_to_id["</s>"]

    @property
    def vocab_size(self) -> int:
        return len(self._id_to_token)

    @property
    def all_special_tokens(self) -> list[str]:
        return list(self.special_tokens_map.values())

    @property
    def all_special_ids(self) -> list[int]:
        return self.convert_tokens_to_ids(self.all_special_tokens)

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        return [self._token_to_id.get(tok, self.unk_token_id) for tok in tokens]

    def _convert_id_to_token(self, index: int) -> str:
        return self._id_to_token[index]

    def convert_ids_to_tokens(self, ids: Iterable[int], skip_special_tokens: bool = False) -> list[str]:
        tokens = []
        for index in ids:
            index = int(index)
            if skip_special_tokens and index in self.all_special_ids:
                continue
            tokens.append(self._convert_id_to_token(index))
        return tokens

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        text = "".join(tokens).replace(SPIECE_UNDERLINE, " ")
        return text[1:] if text.startswith(" ") else text

    def encode(self, text: str) -> list[int]:
        """One piece per whitespace-separated word; words outside the vocabulary become <unk>."""
        return self.convert_tokens_to_ids(SPIECE_UNDERLINE + word for word in text.split())

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        return self.convert_tokens_to_string(self.convert_ids_to_tokens(ids, skip_special_tokens))


def get_tokenizer(model: str) -> Tokenizer:
    return Tokenizer(get_model_config(model).vocab_size)


class Detokenizer:
    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer

    def decode_sequence_inplace(self, seq: "Sequence") -> None:
        """Bring seq.output_text up to date after a token was appended to the sequence."""
        seq.output_text = self.tokenizer.decode(seq.output_token_ids, skip_special_tokens=True)
