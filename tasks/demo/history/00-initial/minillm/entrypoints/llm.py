"""Offline inference (vLLM: vllm/entrypoints/llm.py): LLM(model).generate(prompts, params)."""

from __future__ import annotations

from minillm.engine import EngineArgs, LLMEngine, SamplingParams, Sequence


class LLM:
    def __init__(self, model: str = "demo-tiny", **kwargs) -> None:
        self.engine = LLMEngine(EngineArgs(model=model, **kwargs))

    def generate(self, prompts: list, params: SamplingParams) -> list[Sequence]:
        seqs = [self.engine.add_request(p, params) for p in prompts]
        while self.engine.has_unfinished_requests():
            self.engine.step()
        return seqs
