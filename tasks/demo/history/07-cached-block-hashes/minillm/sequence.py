"""Requests as the engine sees them. Mirrors vllm/sequence.py, with one sequence per request (n=1),
so Sequence also plays the part of vLLM's SequenceGroup."""

from __future__ import annotations

import enum

from minillm.sampling_params import SamplingParams


class SequenceStatus(enum.Enum):
    WAITING = enum.auto()
    RUNNING = enum.auto()
    FINISHED_STOPPED = enum.auto()  # sampled the end-of-sequence token
    FINISHED_LENGTH_CAPPED = enum.auto()  # reached max_tokens or the model's context length
    FINISHED_ABORTED = enum.auto()  # cancelled by the client
    FINISHED_IGNORED = enum.auto()  # the prompt can never fit in one batch or in the KV cache

    @property
    def finished(self) -> bool:
        return self not in (SequenceStatus.WAITING, SequenceStatus.RUNNING)

    @property
    def finish_reason(self) -> str | None:
        return {
            SequenceStatus.FINISHED_STOPPED: "stop",
            SequenceStatus.FINISHED_LENGTH_CAPPED: "length",
            SequenceStatus.FINISHED_ABORTED: "abort",
            SequenceStatus.FINISHED_IGNORED: "length",
        }.get(self)


class Sequence:
    def __init__(self, seq_id: int, request_id: str, prompt: str | None, prompt_token_ids: list[int],
                 sampling_params: SamplingParams, block_size: int):
        self.seq_id = seq_id
        self.request_id = request_id
        self.prompt = prompt
        self.prompt_token_ids = list(prompt_token_ids)
        self.output_token_ids: list[int] = []
        self.output_text = ""
        # Incremental detokenization: output tokens [prefix_offset, read_offset) are the context that
        # the next token is decoded with; output_text holds the text up to read_offset.
        self.prefix_offset = 0
        self.read_offset = 0
        self.sampling_params = sampling_params
        self.block_size = block_size
        self.status = SequenceStatus.WAITING
        self._block_hashes: list[int] = []  # prefix caching: hashes of the full blocks so far

    def get_len(self) -> int:
        return len(self.prompt_token_ids) + len(self.output_token_ids)

    def get_token_ids(self) -> list[int]:
        return self.prompt_token_ids + self.output_token_ids

    def get_last_token_id(self) -> int:
        return self.output_token_ids[-1] if self.output_token_ids else self.prompt_token_ids[-1]

    def append_token_id(self, token_id: int) -> None:
        self.output_token_ids.append(token_id)

    @property
    def num_logical_blocks(self) -> int:
        return (self.get_len() + self.block_size - 1) // self.block_size

    def block_hashes(self) -> list[int]:
        """Content hash of every full block. A block's hash covers its tokens and all tokens before
        it, so equal hashes mean equal KV-cache contents (used by prefix caching).

        Hashes are chained, hash((previous block's hash, this block's tokens)), and kept: each call
        only hashes the blocks that filled up since the last one. Tokens are only ever appended, so
        a full block never changes."""
        num_full_blocks = self.get_len() // self.block_size
        if len(self._block_hashes) < num_full_blocks:
            token_ids = self.get_token_ids()
            for i in range(len(self._block_hashes), num_full_blocks):
                previous = self._block_hashes[-1] if self._block_hashes else None
                block_tokens = tuple(token_ids[i * self.block_size : (i + 1) * self.block_size])
                self._block_hashes.append(hash((previous, block_tokens)))
        return self._block_hashes

    def is_finished(self) -> bool:
        return self.status.finished

    def __repr__(self) -> str:
        return f"Sequence(request_id={self.request_id!r}, status={self.status.name}, len={self.get_len()})"
