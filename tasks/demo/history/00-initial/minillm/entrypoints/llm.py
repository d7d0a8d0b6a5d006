"""Offline batched generation. Mirrors vllm/entrypoints/llm.py."""

from __future__ import annotations

import itertools
from typing import Sequence as SequenceT

from minillm.config import EngineArgs
from minillm.engine import LLMEngine
from minillm.outputs import RequestOutput
from minillm.sampling_params import SamplingParams
from minillm.tokenizer import Tokenizer


class LLM:
    """An engine that runs a whole list of prompts to completion.

        llm = LLM(model="demo-tiny")
        outputs = llm.generate(["hello world"], SamplingParams(temperature=0.0, max_tokens=8))
    """

    def __init__(self, model: str = "demo-tiny", seed: int = 0, **engine_kwargs):
        self.llm_engine = LLMEngine.from_engine_args(EngineArgs(model=model, seed=seed, **engine_kwargs))
        self._request_counter = itertools.count()

    def get_tokenizer(self) -> Tokenizer:
        return self.llm_engine.get_tokenizer()

    def generate(self, prompts: str | list[str] | None = None,
                 sampling_params: SamplingParams | list[SamplingParams] | None = None,
                 prompt_token_ids: SequenceT[SequenceT[int]] | None = None) -> list[RequestOutput]:
        """Outputs in the order of the prompts, given as text or as token ids."""
        if prompts is None and prompt_token_ids is None:
            raise ValueError("Either prompts or prompt_token_ids is needed")
        if isinstance(prompts, str):
            prompts = [prompts]
        num_requests = len(prompts) if prompts is not None else len(prompt_token_ids)
        if sampling_params is None:
            sampling_params = SamplingParams()
        if isinstance(sampling_params, SamplingParams):
            sampling_params = [sampling_params] * num_requests
        if len(sampling_params) != num_requests:
            raise ValueError("The lengths of the prompts and the sampling parameters differ")
        for i in range(num_requests):
            self.llm_engine.add_request(
                str(next(self._request_counter)),
                prompts[i] if prompts is not None else None,
                sampling_params[i],
                prompt_token_ids[i] if prompt_token_ids is not None else None,
            )
        return self._run_engine()

    def _run_engine(self) -> list[RequestOutput]:
        finished: list[RequestOutput] = []
        while self.llm_engine.has_unfinished_requests():
            finished += [output for output in self.llm_engine.step() if output.finished]
        return sorted(finished, key=lambda output: int(output.request_id))
