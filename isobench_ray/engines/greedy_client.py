"""Greedy completions of fixed prompts from an OpenAI-compatible server: the correctness probe.

Copied into the arm's scratch folder and run where the server runs (a sandbox, a container without a
network), with that environment's Python; standard library only.

    python greedy_client.py URL MODEL PROMPTS.json OUT.json MAX_TOKENS
"""

import json
import sys
import urllib.request

# Fixed prompts, varied in length and content; the same for every arm of every task.
PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a small village by the sea,",
    "The three laws of thermodynamics state that",
    "Q: What is 17 times 23?\nA:",
    "import numpy as np\n\n# Compute the softmax of a vector\n",
    "A paged KV cache stores keys and values in fixed-size blocks so that",
    "Translate to German: The weather is nice today.",
]


def main(url: str, model: str, prompts_file: str, out_file: str, max_tokens: str) -> None:
    outputs = []
    for prompt in json.load(open(prompts_file)):
        body = json.dumps({"model": model, "prompt": prompt, "max_tokens": int(max_tokens), "temperature": 0.0,
                           "seed": 0, "stream": False}).encode()
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=300) as response:
            outputs.append(json.load(response)["choices"][0]["text"])
    with open(out_file, "w") as fh:
        json.dump({"outputs": outputs}, fh)


if __name__ == "__main__":
    main(*sys.argv[1:6])
