"""Paged KV-cache bookkeeping. Mirrors vllm/core/block_manager_v1.py.

The KV cache is a pool of fixed-size physical blocks. Each sequence owns a block table that maps its
logical blocks (token i lives in logical block i // block_size) to physical blocks. Blocks carry a
reference count so that sequences can share them. With prefix caching, full blocks are also indexed
by a hash of their contents, and a prompt that starts with the same tokens reuses them.
"""

from __future__ import annotations

import enum

from minillm.sequence import Sequence


class PhysicalTokenBlock:
    __slots__ = ("block_number", "ref_count", "block_hash", "computed")

    def __init__(self, block_number: int):
        self.block_number = block_number
        self.ref_count = 0
        self.block_hash: int | None = None  # prefix caching: hash of the contents, once the block is full
        self.computed = False  # prefix caching: a finished step has written the block's KV

    def __repr__(self) -> str:
        return f"PhysicalTokenBlock(block_number={self.block_number}, ref_count={self.ref_count})"


class BlockAllocator:
    """Hands out physical blocks. Blocks indexed by hash (prefix caching) stay in the index after
    they are freed, and are only evicted when their space is handed out again."""

    def __init__(self, num_blocks: int):
        self.blocks = [PhysicalTokenBlock(i) for i in range(num_blocks)]
        self.cached_blocks: dict[int, PhysicalTokenBlock] = {}

    def allocate(self, block_hash: int | None = None) -> PhysicalTokenBlock:
        """A block for new contents, or, when block_hash is cached, the block that holds them."""
        if block_hash is not None and block_hash in self.cached_blocks:
            block = self.cached_blocks[block_hash]
            block.ref_count += 1
            return block
        block = self._find_free_block()
        if block.block_hash is not None:
            self._evict(block)
        block.ref_count = 1
        block.computed = False
        if block_hash is not None:
            self.register(block, block_hash)
        return block

    def _find_free_block(self) -> PhysicalTokenBlock:
        for block in self.blocks:
            if block.ref_count == 0:
                return block
        raise ValueError("Out of memory! No free blocks are available.")

    def free(self, block: PhysicalTokenBlock) -> None:
        if block.ref_count == 0:
            raise ValueError(f"Double free! {block} is already freed.")
        block.ref_count -= 1

    def get_num_free_blocks(self) -> int:
        return sum(1 for block in self.blocks if block.ref_count == 0)

    def register(self, block: PhysicalTokenBlock, block_hash: int) -> None:
        """Index a full block by the hash of its contents. If another block already holds the same
        contents, that one stays the indexed copy."""
        block.block_hash = block_hash
        self.cached_blocks.setdefault(block_hash, block)

    def _evict(self, block: PhysicalTokenBlock) -> None:
        if self.cached_blocks.get(block.block_hash) is block:
            del self.cached_blocks[block.block_hash]
        block.block_hash = None


class AllocStatus(enum.Enum):
    OK = enum.auto()
    LATER = enum.auto()  # not enough free blocks now
    NEVER = enum.auto()  # more blocks than the whole cache


class BlockSpaceManager:
    def __init__(self, block_size: int, num_gpu_blocks: int, enable_caching: bool, watermark: float):
        self.block_size = block_size
        self.num_total_gpu_blocks = num_gpu_blocks
        self.enable_caching = enable_caching
        self.watermark_blocks = int(watermark * num_gpu_blocks)
        self.allocator = BlockAllocator(num_gpu_blocks)
        self.block_tables: dict[int, list[PhysicalTokenBlock]] = {}

    def get_num_free_blocks(self) -> int:
        return self.allocator.get_num_free_blocks()

    def can_allocate(self, seq: Sequence) -> AllocStatus:
        num_required = seq.num_logical_blocks
        if self.num_total_gpu_blocks - num_required < self.watermark_blocks:
            return AllocStatus.NEVER
        if self.allocator.get_num_free_blocks() - num_required >= self.watermark_blocks:
            return AllocStatus.OK
        return AllocStatus.LATER

    def allocate(self, seq: Sequence) -> None:
        """Blocks for every token of a sequence about to run its prompt; with prefix caching, full
        blocks whose contents are already cached are shared instead."""
        block_hashes = seq.block_hashes() if self.enable_caching else []
        self.block_tables[seq.seq_id] = [
            self.allocator.allocate(block_hashes[i] if i < len(block_hashes) else None)
            for i in range(seq.num_logical_blocks)
        ]

    def can_append_slot(self, seq: Sequence) -> bool:
        # Conservative, as in vLLM: a running sequence may need a new block at any step.
        return self.allocator.get_num_free_blocks() >= 1

    def append_slot(self, seq: Sequence) -> None:
        """Room for the KV of the token this step computes (the sequence's last token)."""
        block_table = self.block_tables[seq.seq_id]
        if len(block_table) < seq.num_logical_blocks:
            block_table.append(self.allocator.allocate())
        if self.enable_caching:
            self._register_full_blocks(seq, block_table)

    def _register_full_blocks(self, seq: Sequence, block_table: list[PhysicalTokenBlock]) -> None:
        for block, block_hash in zip(block_table, seq.block_hashes()):
            if block.block_hash is None:
                self.allocator.register(block, block_hash)

    def mark_blocks_as_computed(self, seq: Sequence) -> None:
        """Called when a step is scheduled: once it ran, the KV of every full block is in the cache."""
        block_table = self.block_tables[seq.seq_id]
        for block in reversed(block_table[: seq.get_len() // self.block_size]):
            if block.computed:
                break
            block.computed = True

    def get_num_cached_tokens(self, seq: Sequence) -> int:
        """Leading prompt tokens whose KV is already cached, in whole blocks. The last token is always
        recomputed: the step needs its logits."""
        if not self.enable_caching:
            return 0
        num_blocks = 0
        for block in self.block_tables[seq.seq_id]:
            if not block.computed:
                break
            num_blocks += 1
        return min(num_blocks, (seq.get_len() - 1) // self.block_size) * self.block_size

    def get_block_table(self, seq: Sequence) -> list[int]:
        return [block.block_number for block in self.block_tables[seq.seq_id]]

    def free(self, seq: Sequence) -> None:
        for block in self.block_tables.pop(seq.seq_id, ()):
            self.allocator.free(block)
