import unittest

from minillm.core.block_manager import AllocStatus, BlockAllocator, BlockSpaceManager
from minillm.sampling_params import SamplingParams
from minillm.sequence import Sequence


def make_seq(seq_id: int, prompt_len: int, block_size: int = 4, first_token: int = 3) -> Sequence:
    return Sequence(seq_id, str(seq_id), None, list(range(first_token, first_token + prompt_len)), SamplingParams(),
                    block_size)


class BlockAllocatorTest(unittest.TestCase):
    def test_allocate_and_free(self):
        allocator = BlockAllocator(num_blocks=4)
        blocks = [allocator.allocate() for _ in range(4)]
        self.assertEqual(len({b.block_number for b in blocks}), 4)
        self.assertEqual(allocator.get_num_free_blocks(), 0)
        with self.assertRaisesRegex(ValueError, "Out of memory"):
            allocator.allocate()
        allocator.free(blocks[2])
        self.assertEqual(allocator.get_num_free_blocks(), 1)
        self.assertIs(allocator.allocate(), blocks[2])
        with self.assertRaisesRegex(ValueError, "Double free"):
            allocator.free(allocator.blocks[2])
            allocator.free(allocator.blocks[2])

    def test_cached_block_is_shared_and_survives_free(self):
        allocator = BlockAllocator(num_blocks=2)
        block = allocator.allocate(block_hash=123)
        self.assertIs(allocator.allocate(block_hash=123), block)
        self.assertEqual(block.ref_count, 2)
        allocator.free(block)
        allocator.free(block)
        self.assertEqual(allocator.get_num_free_blocks(), 2)
        self.assertIs(allocator.allocate(block_hash=123), block)  # still cached after being freed
        self.assertEqual(allocator.get_num_free_blocks(), 1)

    def test_free_cached_block_is_evicted_when_space_is_needed(self):
        allocator = BlockAllocator(num_blocks=1)
        block = allocator.allocate(block_hash=7)
        allocator.free(block)
        self.assertIs(allocator.allocate(), block)
        self.assertIsNone(block.block_hash)
        self.assertNotIn(7, allocator.cached_blocks)


class BlockSpaceManagerTest(unittest.TestCase):
    def test_allocate_append_free(self):
        manager = BlockSpaceManager(block_size=4, num_gpu_blocks=8, enable_caching=False, watermark=0.0)
        seq = make_seq(0, prompt_len=6)
        self.assertIs(manager.can_allocate(seq), AllocStatus.OK)
        manager.allocate(seq)
        self.assertEqual(len(manager.get_block_table(seq)), 2)
        for token in range(3):  # positions 6, 7, 8: the third needs a new block
            seq.append_token_id(token)
            self.assertTrue(manager.can_append_slot(seq))
            manager.append_slot(seq)
        self.assertEqual(len(manager.get_block_table(seq)), 3)
        self.assertEqual(manager.get_num_free_blocks(), 5)
        manager.free(seq)
        self.assertEqual(manager.get_num_free_blocks(), 8)

    def test_can_allocate_respects_capacity(self):
        manager = BlockSpaceManager(block_size=4, num_gpu_blocks=4, enable_caching=False, watermark=0.0)
        self.assertIs(manager.can_allocate(make_seq(0, prompt_len=17)), AllocStatus.NEVER)
        manager.allocate(make_seq(1, prompt_len=12))
        self.assertIs(manager.can_allocate(make_seq(2, prompt_len=8)), AllocStatus.LATER)
        self.assertIs(manager.can_allocate(make_seq(3, prompt_len=4)), AllocStatus.OK)

    def test_prefix_caching_shares_computed_blocks(self):
        manager = BlockSpaceManager(block_size=4, num_gpu_blocks=16, enable_caching=True, watermark=0.0)
        first = make_seq(0, prompt_len=10)
        manager.allocate(first)
        self.assertEqual(manager.get_num_cached_tokens(first), 0)
        manager.mark_blocks_as_computed(first)
        second = make_seq(1, prompt_len=10)
        manager.allocate(second)
        self.assertEqual(manager.get_block_table(second)[:2], manager.get_block_table(first)[:2])
        self.assertNotEqual(manager.get_block_table(second)[2], manager.get_block_table(first)[2])
        self.assertEqual(manager.get_num_cached_tokens(second), 8)
        other = make_seq(2, prompt_len=10, first_token=100)
        manager.allocate(other)
        self.assertEqual(manager.get_num_cached_tokens(other), 0)

    def test_blocks_filled_while_decoding_are_cached(self):
        manager = BlockSpaceManager(block_size=4, num_gpu_blocks=16, enable_caching=True, watermark=0.0)
        seq = make_seq(0, prompt_len=3)
        manager.allocate(seq)
        for token in (50, 51):
            seq.append_token_id(token)
            manager.append_slot(seq)
            manager.mark_blocks_as_computed(seq)
        manager.free(seq)
        again = make_seq(1, prompt_len=3)
        again.output_token_ids = [50, 51]  # the same tokens, as a recomputed sequence would have
        manager.allocate(again)
        self.assertEqual(manager.get_num_cached_tokens(again), 4)


if __name__ == "__main__":
    unittest.main()
