"""A tiny decoder-only transformer with random weights, on NumPy.

Mirrors a vLLM model such as vllm/model_executor/models/llama.py: pre-norm blocks with RMSNorm,
multi-query attention and a SwiGLU MLP (learned position embeddings stand in for rotary ones), and an
attention layer that writes and reads a paged KV cache through slot mappings and block tables, as
vLLM's PagedAttention does. The weights come from np.random.default_rng(weight_seed): the model writes
no meaningful text, but always the same tokens for the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minillm.config import ModelConfig

KVCache = list[tuple[np.ndarray, np.ndarray]]  # per layer: key and value blocks [num_blocks, block_size, head_dim]


@dataclass
class AttentionMetadata:
    """Where each token's KV goes and what each sequence attends to. Mirrors vllm/attention/backends."""

    is_prompt: bool
    slot_mapping: np.ndarray  # [num_tokens] cache slot of each token: block_number * block_size + offset
    query_lens: np.ndarray  # [num_seqs] tokens each sequence runs in this step (1 when decoding)
    context_lens: np.ndarray  # [num_seqs] tokens each sequence attends to, this step's included
    block_tables: np.ndarray  # [num_seqs, max_blocks] physical block of each logical block, 0-padded


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def softmax(x: np.ndarray) -> np.ndarray:
    x = np.exp(x - x.max(axis=-1, keepdims=True))
    x /= x.sum(axis=-1, keepdims=True)
    return x


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


@dataclass
class DecoderLayer:
    input_norm: np.ndarray
    qkv_proj: np.ndarray  # [hidden, (num_heads + 2) * head_dim]: queries, then the one key and value head
    o_proj: np.ndarray
    post_attention_norm: np.ndarray
    gate_up_proj: np.ndarray
    down_proj: np.ndarray


class TinyTransformer:
    def __init__(self, config: ModelConfig):
        if config.num_kv_heads != 1:
            raise ValueError("TinyTransformer implements multi-query attention: num_kv_heads must be 1")
        self.config = config
        rng = np.random.default_rng(config.weight_seed)
        hidden, inter, head_dim = config.hidden_size, config.intermediate_size, config.head_dim

        def dense(fan_in: int, fan_out: int) -> np.ndarray:
            return (rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)).astype(np.float32)

        self.embed_tokens = rng.standard_normal((config.vocab_size, hidden)).astype(np.float32)
        self.embed_positions = (0.5 * rng.standard_normal((config.max_model_len, hidden))).astype(np.float32)
        ones = np.ones(hidden, dtype=np.float32)
        self.layers = [
            DecoderLayer(
                input_norm=ones,
                qkv_proj=dense(hidden, (config.num_heads + 2) * head_dim),
                o_proj=dense(config.num_heads * head_dim, hidden),
                post_attention_norm=ones,
                gate_up_proj=dense(hidden, 2 * inter),
                down_proj=dense(inter, hidden),
            )
            for _ in range(config.num_layers)
        ]
        self.norm = ones
        self.lm_head = dense(hidden, config.vocab_size)
        self.scale = np.float32(1.0 / np.sqrt(head_dim))

    def allocate_kv_cache(self, num_blocks: int, block_size: int) -> KVCache:
        shape = (num_blocks, block_size, self.config.head_dim)
        return [(np.zeros(shape, np.float32), np.zeros(shape, np.float32)) for _ in self.layers]

    def forward(self, input_ids: np.ndarray, positions: np.ndarray, kv_cache: KVCache,
                attn_metadata: AttentionMetadata) -> np.ndarray:
        """Logits of the last token of every sequence: [num_seqs, vocab_size]."""
        num_heads, head_dim = self.config.num_heads, self.config.head_dim
        x = self.embed_tokens[input_ids] + self.embed_positions[positions]
        for layer, (k_cache, v_cache) in zip(self.layers, kv_cache):
            qkv = rms_norm(x, layer.input_norm) @ layer.qkv_proj
            q = qkv[:, : num_heads * head_dim]
            k = qkv[:, num_heads * head_dim : (num_heads + 1) * head_dim]
            v = qkv[:, (num_heads + 1) * head_dim :]
            x = x + self.attention(q, k, v, k_cache, v_cache, attn_metadata) @ layer.o_proj
            gate, up = np.split(rms_norm(x, layer.post_attention_norm) @ layer.gate_up_proj, 2, axis=-1)
            x = x + (silu(gate) * up) @ layer.down_proj
        last_token = np.cumsum(attn_metadata.query_lens) - 1
        return rms_norm(x[last_token], self.norm) @ self.lm_head

    def attention(self, q: np.ndarray, k: np.ndarray, v: np.ndarray, k_cache: np.ndarray, v_cache: np.ndarray,
                  meta: AttentionMetadata) -> np.ndarray:
        """Store this step's keys and values in the cache, then attend over each sequence's context."""
        num_heads, head_dim = self.config.num_heads, self.config.head_dim
        k_cache.reshape(-1, head_dim)[meta.slot_mapping] = k
        v_cache.reshape(-1, head_dim)[meta.slot_mapping] = v
        if meta.is_prompt:
            return self._prompt_attention(q, k_cache, v_cache, meta)
        # Decode: one query per sequence; gather every sequence's blocks, mask what lies past its context.
        num_seqs = len(meta.context_lens)
        keys = k_cache[meta.block_tables].reshape(num_seqs, -1, head_dim)
        values = v_cache[meta.block_tables].reshape(num_seqs, -1, head_dim)
        scores = q.reshape(num_seqs, num_heads, head_dim) @ keys.transpose(0, 2, 1) * self.scale
        past_context = np.arange(keys.shape[1]) >= meta.context_lens[:, None]
        scores[np.broadcast_to(past_context[:, None, :], scores.shape)] = -np.inf
        return (softmax(scores) @ values).reshape(num_seqs, num_heads * head_dim)

    def _prompt_attention(self, q: np.ndarray, k_cache: np.ndarray, v_cache: np.ndarray,
                          meta: AttentionMetadata) -> np.ndarray:
        """Causal attention of each prompt's new tokens over its whole context (cached prefix included)."""
        num_heads, head_dim = self.config.num_heads, self.config.head_dim
        block_size = k_cache.shape[1]
        out = np.empty_like(q)
        start = 0
        for query_len, context_len, block_table in zip(meta.query_lens, meta.context_lens, meta.block_tables):
            blocks = block_table[: (context_len + block_size - 1) // block_size]
            keys = k_cache[blocks].reshape(-1, head_dim)[:context_len]
            values = v_cache[blocks].reshape(-1, head_dim)[:context_len]
            queries = q[start : start + query_len].reshape(query_len, num_heads, head_dim).transpose(1, 0, 2)
            scores = queries @ keys.T * self.scale  # [num_heads, query_len, context_len]
            query_pos = np.arange(context_len - query_len, context_len)
            scores[:, np.arange(context_len)[None, :] > query_pos[:, None]] = -np.inf
            out[start : start + query_len] = (softmax(scores) @ values).transpose(1, 0, 2).reshape(query_len, -1)
            start += query_len
        return out
