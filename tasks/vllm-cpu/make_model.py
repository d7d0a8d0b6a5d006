"""Build the tier's tiny model locally, with no download: a random-weight Llama and a word-level tokenizer.

    .venv-vllm/bin/python tasks/vllm-cpu/make_model.py HF_HOME      # -> the model isobench/tiny-llama

It is written into HF_HOME's hub cache as the repository isobench/tiny-llama (revision main), so that
`--model isobench/tiny-llama` finds it with HF_HUB_OFFLINE=1 from any directory, the server's and the
benchmark client's alike.

Deterministic (fixed seed, fixed vocabulary). Big enough to be a valid vLLM model on a CPU (head size 64),
small enough that a decode step costs a few milliseconds, so the engine's own Python (scheduler, block pool,
detokenizer) is a visible part of every step, as it is on a GPU with a real model.
"""

import json
import sys
from pathlib import Path

VOCAB = 4096
REPO_ID = "isobench/tiny-llama"
REVISION = "0" * 40


def main(dest: str) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    repo = Path(dest) / "hub" / ("models--" + REPO_ID.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(REVISION)
    out = repo / "snapshots" / REVISION
    if (out / "config.json").is_file() and (out / "tokenizer.json").is_file() and any(out.glob("*.safetensors")):
        print(f"{out}: already built")
        return
    out.mkdir(parents=True, exist_ok=True)
    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    words = [f"w{i}" for i in range(VOCAB - len(specials))]
    vocab = {tok: i for i, tok in enumerate(specials + words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", model_max_length=2048)
    fast.save_pretrained(out)

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048,
                         bos_token_id=1, eos_token_id=2, pad_token_id=3, tie_word_embeddings=True,
                         torch_dtype="bfloat16")
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    (out / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 3}))
    print(f"{out}: built")


if __name__ == "__main__":
    main(sys.argv[1])
