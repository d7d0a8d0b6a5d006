"""The engine. Mirrors vllm/engine/llm_engine.py.

add_request() queues a request; step() runs one iteration of continuous batching (schedule, run the
model, sample, detokenize, check the stop conditions) and returns the current state of every request
that took part in it.
"""

from __future__ import annotations

import itertools
import logging

from minillm.config import CacheConfig, EngineArgs, ModelConfig, SchedulerConfig
from minillm.core.scheduler import Scheduler
from minillm.model_runner import ModelRunner
from minillm.outputs import RequestOutput
from minillm.sampling_params import SamplingParams
from minillm.sequence import Sequence, SequenceStatus
from minillm.tokenizer import Detokenizer, Tokenizer

logger = logging.getLogger(__name__)


class LLMEngine:
    def __init__(self, model_config: ModelConfig, cache_config: CacheConfig, scheduler_config: SchedulerConfig,
                 seed: int):
        logger.info("Initializing an LLM engine with model=%s, block_size=%d, num_gpu_blocks=%d, "
                    "enable_prefix_caching=%s, max_num_seqs=%d, seed=%d", model_config.name,
                    cache_config.block_size, cache_config.num_gpu_blocks, cache_config.enable_prefix_caching,
                    scheduler_config.max_num_seqs, seed)
        self.model_config = model_config
        self.cache_config = cache_config
        self.tokenizer = Tokenizer(model_config.vocab_size)
        self.detokenizer = Detokenizer(self.tokenizer)
        self.scheduler = Scheduler(scheduler_config, cache_config, model_config.max_model_len)
        self.model_runner = ModelRunner(model_config, cache_config, seed)
        self._seq_counter = itertools.count()

    @classmethod
    def from_engine_args(cls, engine_args: EngineArgs) -> "LLMEngine":
        return cls(*engine_args.create_engine_configs(), seed=engine_args.seed)

    def get_tokenizer(self) -> Tokenizer:
        return self.tokenizer

    def validate_prompt(self, prompt_token_ids: list[int]) -> None:
        """Raises ValueError for a prompt this engine cannot run."""
        if not prompt_token_ids:
            raise ValueError("The prompt is empty")
        if len(prompt_token_ids) >= self.model_config.max_model_len:
            raise ValueError(f"The prompt is {len(prompt_token_ids)} tokens long; the model's maximum context "
                             f"length is {self.model_config.max_model_len}")
        if not all(0 <= t < self.model_config.vocab_size for t in prompt_token_ids):
            raise ValueError(f"Token ids must lie in [0, {self.model_config.vocab_size})")

    def add_request(self, request_id: str, prompt: str | None, sampling_params: SamplingParams,
                    prompt_token_ids: list[int] | None = None) -> None:
        if prompt_token_ids is None:
            if prompt is None:
                raise ValueError("Either prompt or prompt_token_ids is needed")
            prompt_token_ids = self.tokenizer.encode(prompt)
        prompt_token_ids = [int(t) for t in prompt_token_ids]
        self.validate_prompt(prompt_token_ids)
        seq = Sequence(next(self._seq_counter), request_id, prompt, prompt_token_ids, sampling_params,
                       self.cache_config.block_size)
        self.scheduler.add_seq(seq)

    def abort_request(self, request_id: str) -> None:
        self.scheduler.abort_seq(request_id)

    def has_unfinished_requests(self) -> bool:
        return self.scheduler.has_unfinished_seqs()

    def step(self) -> list[RequestOutput]:
        scheduler_outputs = self.scheduler.schedule()
        outputs = [RequestOutput.from_seq(seq) for seq in scheduler_outputs.ignored_seqs]
        if scheduler_outputs.is_empty():
            return outputs
        next_tokens = self.model_runner.execute_model(scheduler_outputs)
        for seq, token_id in zip(scheduler_outputs.scheduled_seqs, next_tokens):
            seq.append_token_id(token_id)
            self.detokenizer.decode_sequence_inplace(seq)
            self._check_stop(seq)
            outputs.append(RequestOutput.from_seq(seq))
        self.scheduler.free_finished_seqs()
        return outputs

    def _check_stop(self, seq: Sequence) -> None:
        params = seq.sampling_params
        if not params.ignore_eos and seq.get_last_token_id() == self.tokenizer.eos_token_id:
            seq.status = SequenceStatus.FINISHED_STOPPED
        elif len(seq.output_token_ids) >= params.max_tokens or seq.get_len() >= self.model_config.max_model_len:
            seq.status = SequenceStatus.FINISHED_LENGTH_CAPPED
