"""What the engine returns for a request after each step. Mirrors vllm/outputs.py."""

from __future__ import annotations

from dataclasses import dataclass

from minillm.sequence import Sequence


@dataclass
class CompletionOutput:
    index: int
    text: str  # all the text generated so far
    token_ids: list[int]
    finish_reason: str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]
    finished: bool

    @classmethod
    def from_seq(cls, seq: Sequence) -> "RequestOutput":
        completion = CompletionOutput(0, seq.output_text, seq.output_token_ids, seq.status.finish_reason)
        return cls(seq.request_id, seq.prompt, seq.prompt_token_ids, [completion], seq.is_finished())
