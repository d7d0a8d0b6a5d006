import unittest

import numpy as np

from minillm import LLM, SamplingParams

GREEDY = SamplingParams(temperature=0.0, max_tokens=24, ignore_eos=True)


def random_prompts(num: int, length: int, seed: int = 0) -> list[list[int]]:
    return np.random.default_rng(seed).integers(3, 1024, size=(num, length)).tolist()


def token_ids(outputs) -> list[list[int]]:
    return [output.outputs[0].token_ids for output in outputs]


class EngineTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.llm = LLM(model="demo-tiny")
        cls.prompts = random_prompts(8, 20)
        cls.reference = token_ids(cls.llm.generate(prompt_token_ids=cls.prompts, sampling_params=GREEDY))

    def test_greedy_is_deterministic(self):
        again = token_ids(LLM(model="demo-tiny").generate(prompt_token_ids=self.prompts, sampling_params=GREEDY))
        self.assertEqual(again, self.reference)
        self.assertTrue(all(len(ids) == 24 for ids in again))

    def test_batch_size_does_not_change_outputs(self):
        alone = token_ids(self.llm.generate(prompt_token_ids=self.prompts[3:4], sampling_params=GREEDY))
        self.assertEqual(alone[0], self.reference[3])

    def test_prompt_of_prompt_and_outputs_continues_the_same(self):
        prompt = self.prompts[0] + self.reference[0][:10]
        params = SamplingParams(temperature=0.0, max_tokens=14, ignore_eos=True)
        rest = token_ids(self.llm.generate(prompt_token_ids=[prompt], sampling_params=params))[0]
        self.assertEqual(rest, self.reference[0][10:])

    def test_preemption_recomputes_the_same_tokens(self):
        small = LLM(model="demo-tiny", num_gpu_blocks=12)
        self.assertEqual(token_ids(small.generate(prompt_token_ids=self.prompts, sampling_params=GREEDY)),
                         self.reference)

    def test_prefix_caching_keeps_outputs(self):
        cached = LLM(model="demo-tiny", enable_prefix_caching=True)
        prefix = random_prompts(1, 40, seed=1)[0]
        prompts = [prefix + p for p in self.prompts]
        expected = token_ids(self.llm.generate(prompt_token_ids=prompts, sampling_params=GREEDY))
        self.assertEqual(token_ids(cached.generate(prompt_token_ids=prompts, sampling_params=GREEDY)), expected)
        self.assertEqual(token_ids(cached.generate(prompt_token_ids=prompts, sampling_params=GREEDY)), expected)
        self.assertGreater(len(cached.llm_engine.scheduler.block_manager.allocator.cached_blocks), 0)

    def test_text_prompts_and_stop_at_eos(self):
        outputs = self.llm.generate(["ba be bi", "zu zo"], SamplingParams(temperature=0.0, max_tokens=5))
        for output in outputs:
            completion = output.outputs[0]
            self.assertEqual(completion.finish_reason, "length")
            self.assertEqual(completion.text, self.llm.get_tokenizer().decode(completion.token_ids))

    def test_prompt_longer_than_the_model_is_rejected(self):
        with self.assertRaisesRegex(ValueError, "maximum context length"):
            self.llm.generate(prompt_token_ids=[[5] * 4096], sampling_params=GREEDY)

    def test_random_sampling_is_reproducible(self):
        params = SamplingParams(temperature=1.0, max_tokens=16, ignore_eos=True)
        first = token_ids(LLM(model="demo-tiny", seed=7).generate(prompt_token_ids=self.prompts, sampling_params=params))
        second = token_ids(LLM(model="demo-tiny", seed=7).generate(prompt_token_ids=self.prompts, sampling_params=params))
        self.assertEqual(first, second)


if __name__ == "__main__":
    unittest.main()
