"""Engine configuration: the model registry and the engine arguments.

Mirrors vllm/config.py (ModelConfig, CacheConfig, SchedulerConfig) and vllm/engine/arg_utils.py
(EngineArgs and the command-line flags that every entry point shares).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelConfig:
    name: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    max_model_len: int
    weight_seed: int  # the weights are drawn from np.random.default_rng(weight_seed)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


# The "checkpoints" this engine can serve. Weights are random but fixed by the seed, so every run of
# the same model computes exactly the same tokens.
MODELS: dict[str, ModelConfig] = {
    "demo-tiny": ModelConfig(
        name="demo-tiny", vocab_size=1024, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=1,
        intermediate_size=128, max_model_len=2048, weight_seed=0,
    ),
}


def get_model_config(name: str) -> ModelConfig:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"Unknown model {name!r}; available models: {', '.join(MODELS)}") from None


@dataclass(frozen=True)
class CacheConfig:
    block_size: int  # tokens per KV-cache block
    num_gpu_blocks: int  # size of the KV-cache pool
    enable_prefix_caching: bool
    watermark: float = 0.01  # fraction of blocks kept free when admitting prompts, to avoid thrashing


@dataclass(frozen=True)
class SchedulerConfig:
    max_num_seqs: int  # sequences in one batch
    max_num_batched_tokens: int  # tokens in one prompt batch


@dataclass
class EngineArgs:
    model: str = "demo-tiny"
    seed: int = 0
    block_size: int = 16
    num_gpu_blocks: int = 4096
    enable_prefix_caching: bool = False
    max_num_seqs: int = 64
    max_num_batched_tokens: int = 2048

    @staticmethod
    def add_cli_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        defaults = EngineArgs()
        parser.add_argument("--model", type=str, default=defaults.model, help=f"one of: {', '.join(MODELS)}")
        parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the sampler")
        parser.add_argument("--block-size", type=int, default=defaults.block_size, help="tokens per KV-cache block")
        parser.add_argument("--num-gpu-blocks", type=int, default=defaults.num_gpu_blocks,
                            help="number of KV-cache blocks")
        parser.add_argument("--enable-prefix-caching", action="store_true",
                            help="reuse the KV-cache blocks of prompt prefixes seen before")
        parser.add_argument("--max-num-seqs", type=int, default=defaults.max_num_seqs,
                            help="maximum number of sequences per batch")
        parser.add_argument("--max-num-batched-tokens", type=int, default=defaults.max_num_batched_tokens,
                            help="maximum number of prompt tokens per batch")
        return parser

    @classmethod
    def from_cli_args(cls, args: argparse.Namespace) -> "EngineArgs":
        return cls(model=args.model, seed=args.seed, block_size=args.block_size,
                   num_gpu_blocks=args.num_gpu_blocks, enable_prefix_caching=args.enable_prefix_caching,
                   max_num_seqs=args.max_num_seqs, max_num_batched_tokens=args.max_num_batched_tokens)

    def create_engine_configs(self) -> tuple[ModelConfig, CacheConfig, SchedulerConfig]:
        model_config = get_model_config(self.model)
        if self.max_num_batched_tokens < model_config.max_model_len:
            raise ValueError(f"max_num_batched_tokens ({self.max_num_batched_tokens}) is smaller than "
                             f"max_model_len ({model_config.max_model_len}): long prompts could never run")
        cache_config = CacheConfig(self.block_size, self.num_gpu_blocks, self.enable_prefix_caching)
        return model_config, cache_config, SchedulerConfig(self.max_num_seqs, self.max_num_batched_tokens)
