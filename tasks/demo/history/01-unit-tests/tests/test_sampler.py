import unittest

import numpy as np

from minillm.sampler import Sampler
from minillm.sampling_params import SamplingParams


class SamplerTest(unittest.TestCase):
    def setUp(self):
        self.logits = np.random.default_rng(0).standard_normal((6, 50)).astype(np.float32)

    def test_greedy_is_argmax(self):
        tokens = Sampler(seed=0)(self.logits, [SamplingParams(temperature=0.0)] * 6)
        self.assertEqual(tokens, self.logits.argmax(axis=-1).tolist())

    def test_same_seed_same_tokens(self):
        params = [SamplingParams(temperature=1.0)] * 6
        self.assertEqual(Sampler(seed=3)(self.logits, params), Sampler(seed=3)(self.logits, params))

    def test_top_k_one_is_greedy(self):
        tokens = Sampler(seed=0)(self.logits, [SamplingParams(temperature=1.0, top_k=1)] * 6)
        self.assertEqual(tokens, self.logits.argmax(axis=-1).tolist())

    def test_top_p_keeps_the_most_likely_tokens(self):
        sampler = Sampler(seed=1)
        logits = np.full((1, 50), -10.0, dtype=np.float32)
        logits[0, [7, 9]] = [5.0, 4.9]
        tokens = {sampler(logits, [SamplingParams(temperature=1.0, top_p=0.9)])[0] for _ in range(50)}
        self.assertEqual(tokens, {7, 9})

    def test_mixed_batch(self):
        params = [SamplingParams(temperature=0.0), SamplingParams(temperature=0.7)] * 3
        tokens = Sampler(seed=0)(self.logits, params)
        self.assertEqual(tokens[::2], self.logits[::2].argmax(axis=-1).tolist())
        self.assertTrue(all(0 <= t < 50 for t in tokens))


if __name__ == "__main__":
    unittest.main()
