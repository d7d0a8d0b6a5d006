"""Continuous batching. Mirrors vllm/core/scheduler.py (the v0 scheduler without chunked prefill).

Every step is either a prompt run, which admits waiting requests first-come first-served while the
batch and the KV cache have room, or a decode run, which advances every running request by one token.
When the cache runs out during decoding, the most recent requests are preempted: their blocks are
freed and they go back to the front of the waiting queue, to be recomputed later.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

from minillm.config import CacheConfig, SchedulerConfig
from minillm.core.block_manager import AllocStatus, BlockSpaceManager
from minillm.sequence import Sequence, SequenceStatus

logger = logging.getLogger(__name__)


@dataclass
class SchedulerOutputs:
    scheduled_seqs: list[Sequence]
    is_prompt: bool
    ignored_seqs: list[Sequence] = field(default_factory=list)
    block_tables: list[list[int]] = field(default_factory=list)  # per scheduled sequence
    num_cached_tokens: list[int] = field(default_factory=list)  # prompt runs: prefix-cache hits

    def is_empty(self) -> bool:
        return not self.scheduled_seqs


class Scheduler:
    def __init__(self, scheduler_config: SchedulerConfig, cache_config: CacheConfig, max_model_len: int):
        self.config = scheduler_config
        self.max_prompt_len = min(max_model_len, scheduler_config.max_num_batched_tokens)
        self.block_manager = BlockSpaceManager(cache_config.block_size, cache_config.num_gpu_blocks,
                                               cache_config.enable_prefix_caching, cache_config.watermark)
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []

    def add_seq(self, seq: Sequence) -> None:
        self.waiting.append(seq)

    def abort_seq(self, request_id: str) -> None:
        for queue in (self.waiting, self.running):
            for seq in queue:
                if seq.request_id == request_id:
                    queue.remove(seq)
                    seq.status = SequenceStatus.FINISHED_ABORTED
                    self.block_manager.free(seq)
                    return

    def has_unfinished_seqs(self) -> bool:
        return bool(self.waiting or self.running)

    def schedule(self) -> SchedulerOutputs:
        outputs = self._schedule()
        block_manager = self.block_manager
        outputs.block_tables = [block_manager.get_block_table(seq) for seq in outputs.scheduled_seqs]
        if outputs.is_prompt:
            outputs.num_cached_tokens = [block_manager.get_num_cached_tokens(seq) for seq in outputs.scheduled_seqs]
        if block_manager.enable_caching:
            for seq in outputs.scheduled_seqs:
                block_manager.mark_blocks_as_computed(seq)
        return outputs

    def _schedule(self) -> SchedulerOutputs:
        ignored: list[Sequence] = []
        scheduled: list[Sequence] = []
        num_batched_tokens = 0
        while self.waiting and len(self.running) + len(scheduled) < self.config.max_num_seqs:
            seq = self.waiting[0]
            num_tokens = seq.get_len()
            if num_tokens > self.max_prompt_len:
                alloc_status = AllocStatus.NEVER
            else:
                alloc_status = self.block_manager.can_allocate(seq)
            if alloc_status is AllocStatus.NEVER:
                logger.warning("Input of %d tokens can never be scheduled; request %s is ignored",
                               num_tokens, seq.request_id)
                seq.status = SequenceStatus.FINISHED_IGNORED
                ignored.append(self.waiting.popleft())
                continue
            if alloc_status is AllocStatus.LATER:
                break
            if num_batched_tokens + num_tokens > self.config.max_num_batched_tokens:
                break
            self.waiting.popleft()
            self.block_manager.allocate(seq)
            seq.status = SequenceStatus.RUNNING
            scheduled.append(seq)
            num_batched_tokens += num_tokens
        if scheduled:
            self.running.extend(scheduled)
            return SchedulerOutputs(scheduled, True, ignored)

        running = deque(self.running)
        kept: list[Sequence] = []
        num_preempted = 0
        while running:
            seq = running.popleft()
            while not self.block_manager.can_append_slot(seq):
                num_preempted += 1
                if running:
                    self._preempt(running.pop())
                else:
                    self._preempt(seq)
                    break
            else:
                self.block_manager.append_slot(seq)
                kept.append(seq)
        if num_preempted:
            logger.warning("Preempted %d sequences: the KV cache is full", num_preempted)
        self.running = kept
        return SchedulerOutputs(kept, False, ignored)

    def _preempt(self, seq: Sequence) -> None:
        """Preemption by recomputation: drop the KV cache, rerun prompt and outputs later."""
        self.block_manager.free(seq)
        seq.status = SequenceStatus.WAITING
        self.waiting.appendleft(seq)

    def free_finished_seqs(self) -> None:
        finished = [seq for seq in self.running if seq.is_finished()]
        for seq in finished:
            self.block_manager.free(seq)
        if finished:
            self.running = [seq for seq in self.running if not seq.is_finished()]
