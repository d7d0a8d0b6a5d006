"""Paged KV-cache block manager (vLLM: vllm/core/block_manager.py).

Each sequence owns a block table; a block holds `block_size` token slots. With prefix caching on, each
full block gets a hash chained over the blocks before it, so identical prefixes can share blocks.
"""

from __future__ import annotations

import hashlib
from collections import deque

import numpy as np


class Block:
    __slots__ = ("block_id", "ref_count")

    def __init__(self, block_id: int) -> None:
        self.block_id = block_id
        self.ref_count = 0


class BlockManager:
    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool = False) -> None:
        self.block_size = block_size
        self.blocks = [Block(i) for i in range(num_blocks)]
        self.free_blocks: deque[Block] = deque(self.blocks)
        self.tables: dict[int, list[Block]] = {}
        self.enable_prefix_caching = enable_prefix_caching
        self.block_hashes: dict[int, list[bytes]] = {}

    def get_num_free_blocks(self) -> int:
        return len(self.free_blocks)

    def _allocate_block(self) -> Block:
        if not self.free_blocks:
            raise RuntimeError("out of KV-cache blocks")
        block = self.free_blocks.popleft()
        block.ref_count = 1
        return block

    def _free_block(self, block: Block) -> None:
        block.ref_count -= 1
        if block.ref_count == 0:
            self.free_blocks.append(block)

    def blocks_needed(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    def can_allocate(self, num_tokens: int) -> bool:
        return self.get_num_free_blocks() >= self.blocks_needed(num_tokens)

    def allocate(self, seq_id: int, token_ids: list[int]) -> None:
        self.tables[seq_id] = [self._allocate_block() for _ in range(self.blocks_needed(len(token_ids)))]
        self.update_hashes(seq_id, token_ids)

    def can_append_slot(self) -> bool:
        return self.get_num_free_blocks() >= 1

    def append_slot(self, seq_id: int, token_ids: list[int]) -> None:
        table = self.tables[seq_id]
        if len(token_ids) > len(table) * self.block_size:
            table.append(self._allocate_block())
        self.update_hashes(seq_id, token_ids)

    def update_hashes(self, seq_id: int, token_ids: list[int]) -> None:
        if not self.enable_prefix_caching:
            return
        # Hashes of full blocks never change: only blocks filled since the last call need one.
        hashes = self.block_hashes.setdefault(seq_id, [])
        prev = hashes[-1] if hashes else b""
        for start in range(len(hashes) * self.block_size, len(token_ids) - self.block_size + 1, self.block_size):
            chunk = np.asarray(token_ids[start:start + self.block_size], dtype=np.int64).tobytes()
            prev = hashlib.blake2b(prev + chunk, digest_size=16).digest()
            hashes.append(prev)

    def free(self, seq_id: int) -> None:
        for block in self.tables.pop(seq_id, []):
            self._free_block(block)
        self.block_hashes.pop(seq_id, None)
