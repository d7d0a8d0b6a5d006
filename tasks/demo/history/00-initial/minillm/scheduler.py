"""Continuous-batching scheduler (vLLM: vllm/core/scheduler.py).

Every step, waiting sequences are admitted while KV blocks and batch slots allow, and every running
sequence must be able to take one more token.
"""

from __future__ import annotations

from collections import deque

from minillm.block_manager import BlockManager


class Scheduler:
    def __init__(self, block_manager: BlockManager, max_num_seqs: int) -> None:
        self.block_manager = block_manager
        self.max_num_seqs = max_num_seqs
        self.waiting: deque = deque()
        self.running: list = []

    def add(self, seq) -> None:
        self.waiting.append(seq)

    def schedule(self) -> tuple[list, list]:
        """Returns (newly admitted, running): the new ones need a prefill first."""
        admitted = []
        while self.waiting and len(self.running) < self.max_num_seqs:
            seq = self.waiting[0]
            if not self.block_manager.can_allocate(len(seq.prompt_ids) + 1):
                break
            self.waiting.popleft()
            self.block_manager.allocate(seq.seq_id, seq.prompt_ids)
            self.running.append(seq)
            admitted.append(seq)
        for seq in self.running:
            if not self.block_manager.can_append_slot():
                raise RuntimeError("KV cache exhausted: lower --max-num-seqs or raise --num-blocks")
        return admitted, list(self.running)

    def finish(self, seq) -> None:
        self.running.remove(seq)
        self.block_manager.free(seq.seq_id)

    def has_unfinished(self) -> bool:
        return bool(self.waiting or self.running)
