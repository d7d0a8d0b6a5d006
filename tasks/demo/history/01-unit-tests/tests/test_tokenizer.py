import unittest

from minillm.sampling_params import SamplingParams
from minillm.sequence import Sequence
from minillm.tokenizer import Detokenizer, get_tokenizer


class TokenizerTest(unittest.TestCase):
    def setUp(self):
        self.tokenizer = get_tokenizer("demo-tiny")

    def test_vocabulary_is_fixed(self):
        self.assertEqual(self.tokenizer.vocab_size, 1024)
        self.assertEqual(self.tokenizer.convert_ids_to_tokens([0, 1, 2, 3, 4]), ["<unk>", "<s>", "</s>", "▁ba", "▁be"])

    def test_decode_then_encode_round_trips_words(self):
        ids = list(range(3, 200, 7))
        self.assertEqual(self.tokenizer.encode(self.tokenizer.decode(ids)), ids)

    def test_unknown_words_and_special_tokens(self):
        self.assertEqual(self.tokenizer.encode("ba qqq"), [3, self.tokenizer.unk_token_id])
        eos = self.tokenizer.eos_token_id
        self.assertEqual(self.tokenizer.decode([3, eos, 4]), "ba be")
        self.assertEqual(self.tokenizer.decode([3, eos, 4], skip_special_tokens=False), "ba</s> be")


class DetokenizerTest(unittest.TestCase):
    def test_streamed_text_equals_full_decode(self):
        tokenizer = get_tokenizer("demo-tiny")
        detokenizer = Detokenizer(tokenizer)
        outputs = [5, 0, 1, 2, 17, 2, 2, 900, 31, 1, 44]  # special tokens in between words
        seq = Sequence(0, "0", None, [3, 4], SamplingParams(), block_size=16)
        streamed = ""
        for token_id in outputs:
            seq.append_token_id(token_id)
            before = seq.output_text
            detokenizer.decode_sequence_inplace(seq)
            self.assertTrue(seq.output_text.startswith(before))
            streamed += seq.output_text[len(before):]
            self.assertEqual(seq.output_text, tokenizer.decode(seq.output_token_ids))
        self.assertEqual(streamed, tokenizer.decode(outputs))


if __name__ == "__main__":
    unittest.main()
