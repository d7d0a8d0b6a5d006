"""The engine (vLLM: vllm/engine/llm_engine.py): add_request, then step() until every sequence finished."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from minillm.block_manager import BlockManager
from minillm.model import TinyLM
from minillm.sampler import sample
from minillm.scheduler import Scheduler
from minillm.tokenizer import Detokenizer, Tokenizer


@dataclass
class SamplingParams:
    max_tokens: int = 16
    temperature: float = 1.0


@dataclass
class EngineArgs:
    model: str = "demo-tiny"
    num_blocks: int = 2048
    block_size: int = 4
    max_num_seqs: int = 256
    enable_prefix_caching: bool = False
    seed: int = 0

    @staticmethod
    def add_cli_args(parser) -> None:
        parser.add_argument("--model", default="demo-tiny")
        parser.add_argument("--num-blocks", type=int, default=2048)
        parser.add_argument("--block-size", type=int, default=4)
        parser.add_argument("--max-num-seqs", type=int, default=256)
        parser.add_argument("--enable-prefix-caching", action="store_true")
        parser.add_argument("--seed", type=int, default=0)

    @classmethod
    def from_cli_args(cls, args) -> "EngineArgs":
        return cls(model=args.model, num_blocks=args.num_blocks, block_size=args.block_size,
                   max_num_seqs=args.max_num_seqs, enable_prefix_caching=args.enable_prefix_caching, seed=args.seed)


@dataclass
class Sequence:
    seq_id: int
    prompt_ids: list[int]
    params: SamplingParams
    output_ids: list[int] = field(default_factory=list)
    output_text: str = ""
    context: np.ndarray | None = None

    @property
    def all_ids(self) -> list[int]:
        return self.prompt_ids + self.output_ids

    @property
    def finished(self) -> bool:
        return len(self.output_ids) >= self.params.max_tokens


@dataclass
class StepOutput:
    seq: Sequence
    delta: str
    finished: bool


class LLMEngine:
    def __init__(self, args: EngineArgs, stream: bool = False) -> None:
        self.model = TinyLM(args.model)
        self.tokenizer = Tokenizer()
        self.detokenizer = Detokenizer(self.tokenizer)
        self.block_manager = BlockManager(args.num_blocks, args.block_size, args.enable_prefix_caching)
        self.scheduler = Scheduler(self.block_manager, args.max_num_seqs)
        self.rng = np.random.default_rng(args.seed)
        self.stream = stream  # streaming servers detokenize every step; offline generate decodes at the end
        self._ids = itertools.count()

    def add_request(self, prompt: str | list[int], params: SamplingParams) -> Sequence:
        ids = self.tokenizer.encode(prompt) if isinstance(prompt, str) else list(prompt)
        seq = Sequence(next(self._ids), ids or [0], params)
        self.scheduler.add(seq)
        return seq

    def has_unfinished_requests(self) -> bool:
        return self.scheduler.has_unfinished()

    def step(self) -> list[StepOutput]:
        admitted, running = self.scheduler.schedule()
        for seq in admitted:  # prefill
            seq.context = self.model.context_of(seq.prompt_ids)
        if not running:
            return []
        last = np.asarray([seq.all_ids[-1] for seq in running])
        logits = self.model.forward(last, np.stack([seq.context for seq in running]))
        tokens = sample(logits, [seq.params.temperature for seq in running], self.rng)
        outputs = []
        for seq, token in zip(running, tokens):
            seq.output_ids.append(token)
            seq.context = 0.9 * seq.context + 0.1 * self.model.embed[token]
            self.block_manager.append_slot(seq.seq_id, seq.all_ids)
            delta = self.detokenizer.decode_delta(seq) if self.stream else ""
            if seq.finished:
                self.scheduler.finish(seq)
                if not self.stream:
                    seq.output_text = self.tokenizer.decode(seq.output_ids)
            outputs.append(StepOutput(seq, delta, seq.finished))
        return outputs
