"""Runs one scheduled batch through the model. Mirrors vllm/worker/model_runner.py: it flattens the
batch into the model's inputs (token ids, positions, KV-cache slots, block tables), runs the forward
pass and samples the next token of every sequence."""

from __future__ import annotations

import numpy as np

from minillm.config import CacheConfig, ModelConfig
from minillm.core.scheduler import SchedulerOutputs
from minillm.model import AttentionMetadata, TinyTransformer
from minillm.sampler import Sampler


class ModelRunner:
    def __init__(self, model_config: ModelConfig, cache_config: CacheConfig, seed: int):
        self.block_size = cache_config.block_size
        self.model = TinyTransformer(model_config)
        self.kv_cache = self.model.allocate_kv_cache(cache_config.num_gpu_blocks, cache_config.block_size)
        self.sampler = Sampler(seed)

    def execute_model(self, scheduler_outputs: SchedulerOutputs) -> list[int]:
        if scheduler_outputs.is_prompt:
            input_ids, positions, attn_metadata = self._prepare_prompt(scheduler_outputs)
        else:
            input_ids, positions, attn_metadata = self._prepare_decode(scheduler_outputs)
        logits = self.model.forward(input_ids, positions, self.kv_cache, attn_metadata)
        return self.sampler(logits, [seq.sampling_params for seq in scheduler_outputs.scheduled_seqs])

    def _block_table_array(self, block_tables: list[list[int]]) -> np.ndarray:
        array = np.zeros((len(block_tables), max(map(len, block_tables))), dtype=np.int64)
        for row, block_table in zip(array, block_tables):
            row[: len(block_table)] = block_table
        return array

    def _prepare_prompt(self, out: SchedulerOutputs) -> tuple[np.ndarray, np.ndarray, AttentionMetadata]:
        """Every prompt token not already in the prefix cache."""
        input_ids: list[int] = []
        positions: list[np.ndarray] = []
        query_lens, context_lens = [], []
        for seq, num_cached in zip(out.scheduled_seqs, out.num_cached_tokens):
            input_ids += seq.get_token_ids()[num_cached:]
            positions.append(np.arange(num_cached, seq.get_len()))
            query_lens.append(seq.get_len() - num_cached)
            context_lens.append(seq.get_len())
        block_tables = self._block_table_array(out.block_tables)
        slot_mapping = np.concatenate([
            block_table[pos // self.block_size] * self.block_size + pos % self.block_size
            for block_table, pos in zip(block_tables, positions)
        ])
        meta = AttentionMetadata(True, slot_mapping, np.array(query_lens), np.array(context_lens), block_tables)
        return np.array(input_ids), np.concatenate(positions), meta

    def _prepare_decode(self, out: SchedulerOutputs) -> tuple[np.ndarray, np.ndarray, AttentionMetadata]:
        """The last token of every sequence."""
        seqs = out.scheduled_seqs
        input_ids = np.array([seq.get_last_token_id() for seq in seqs])
        context_lens = np.array([seq.get_len() for seq in seqs])
        positions = context_lens - 1
        block_tables = self._block_table_array(out.block_tables)
        blocks = block_tables[np.arange(len(seqs)), positions // self.block_size]
        slot_mapping = blocks * self.block_size + positions % self.block_size
        meta = AttentionMetadata(False, slot_mapping, np.ones(len(seqs), dtype=np.int64), context_lens, block_tables)
        return input_ids, positions, meta
