"""Beam decoding after one shared prompt without copying the prompt's keys and values.

HF's KV cache keeps one copy of the prompt per beam and concatenates every new position
onto all of it: for a 512-token prompt, 10 beams and SmolLM2 that is ~240 MB copied per
step, more than the step's own arithmetic on this CPU. Here the prompt's keys/values stay
one batch-1 tensor that every beam attends to, and only the generated tokens' keys/values
are per beam (reordered with the beams; a few KB).

`step` runs a Llama-family decoder (SmolLM2, the tiny test LM; LoRA adapters included,
since it calls the model's own projection modules) one or more tokens forward; its
output equals HF's cached forward up to float rounding (tested). Other architectures
keep HF's cache path (`supported` says which).
"""
from __future__ import annotations

import torch

LLAMA_LIKE = ("llama",)  # model_type values whose layers this module knows


def supported(decoder) -> bool:
    cfg = getattr(decoder, "config", None)
    return getattr(cfg, "model_type", None) in LLAMA_LIKE and hasattr(decoder, "rotary_emb") and hasattr(decoder, "layers")


class SharedPrefixCache:
    """Per layer: the prompt's (keys, values) [1, kv_heads, P, d], shared, and the
    generated tokens' (keys, values) [beams, kv_heads, S, d]."""

    def __init__(self, prefix: list[tuple[torch.Tensor, torch.Tensor]]):
        self.prefix = prefix
        self.suffix: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    @classmethod
    def from_hf(cls, cache) -> SharedPrefixCache:
        """From the DynamicCache of a batch-1 prompt pass (the tensors are shared, not copied)."""
        return cls([(layer.keys, layer.values) for layer in cache.layers])

    @property
    def prompt_length(self) -> int:
        return self.prefix[0][0].shape[2]

    @property
    def generated(self) -> int:
        return 0 if self.suffix is None else self.suffix[0][0].shape[2]

    def fork(self) -> SharedPrefixCache:
        """A cache for a new search over the same prompt (the prompt part is shared)."""
        return SharedPrefixCache(self.prefix)

    def reorder(self, parents: torch.Tensor) -> None:
        """Keep the beams `parents` (rows of the previous step), in that order."""
        if self.suffix is not None:  # before the first step every beam is the bare prompt
            self.suffix = [(k.index_select(0, parents), v.index_select(0, parents)) for k, v in self.suffix]


def _attend(q, prefix_k, prefix_v, k, v, scaling: float) -> torch.Tensor:
    """Attention of q [B, H, T, d] over the shared prefix and the per-beam keys k [B, Hkv, S, d]
    (the last T of which are q's own positions, causally masked). Returns [B, H, T, d]."""
    b, h, t, d = q.shape
    hkv, p, s = prefix_k.shape[1], prefix_k.shape[2], k.shape[2]
    g = h // hkv  # query heads per kv head (grouped-query attention)
    q = q.reshape(b, hkv, g * t, d)
    # prefix scores: every beam's queries against ONE copy of the prompt keys
    q_by_head = q.permute(1, 0, 2, 3).reshape(hkv, b * g * t, d)
    scores_p = (q_by_head @ prefix_k[0].transpose(1, 2)).view(hkv, b, g * t, p).permute(1, 0, 2, 3)
    scores_s = q @ k.transpose(2, 3)  # [B, Hkv, G*T, S]
    if t > 1:  # query position i (of the T new ones) sees generated positions up to s - t + i
        rows = torch.arange(t, device=q.device).repeat(g)
        future = torch.arange(s, device=q.device)[None, :] > (s - t + rows)[:, None]
        scores_s = scores_s.masked_fill(future, float("-inf"))
    weights = torch.softmax(torch.cat([scores_p, scores_s], dim=-1).float() * scaling, dim=-1).to(q.dtype)
    w_p, w_s = weights[..., :p], weights[..., p:]
    out_p = (w_p.permute(1, 0, 2, 3).reshape(hkv, b * g * t, p) @ prefix_v[0]).view(hkv, b, g * t, d).permute(1, 0, 2, 3)
    out = out_p + w_s @ v
    return out.reshape(b, h, t, d)


def step(decoder, cache: SharedPrefixCache, input_ids: torch.Tensor) -> torch.Tensor:
    """Feed input_ids [B, T] (B = beams, already reordered) after the prompt and the
    tokens generated so far; appends their keys/values to the cache and returns the
    final-norm hidden state of the last position [B, hidden]."""
    return step_many(decoder, [cache], [input_ids])[0]


def step_many(decoder, caches: list[SharedPrefixCache], inputs: list[torch.Tensor],
              every_position: bool = False) -> list[torch.Tensor]:
    """`step` for several searches at once, each over its own prompt: inputs[i] [B_i, T_i]
    goes after caches[i]; the T_i may differ (a trie search feeding a forced run beside
    others feeding one token). Every token of every search is one row of the projections
    and MLPs (one matrix product per layer for all of them, no padding); attention runs
    per search against its own prompt and tokens. With `every_position`, search i gets the
    final-norm hidden state of every fed token [B_i * T_i, hidden] (row b * T_i + t), not
    only each beam's last."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    for cache, x in zip(caches, inputs):
        if cache.suffix is not None and cache.suffix[0][0].shape[0] != x.shape[0]:
            raise ValueError(f"{x.shape[0]} beams fed but the cache holds {cache.suffix[0][0].shape[0]}")
    shapes = [tuple(x.shape) for x in inputs]
    flat = torch.cat([x.reshape(-1) for x in inputs]) if len(inputs) > 1 else inputs[0].reshape(-1)
    n_tokens, device = flat.shape[0], flat.device
    hidden = decoder.embed_tokens(flat).unsqueeze(0)  # [1, N, hidden]: row b*T_i + t of search i
    positions = torch.cat([torch.arange(c.prompt_length + c.generated, c.prompt_length + c.generated + t, device=device)
                           .repeat(b) for c, (b, t) in zip(caches, shapes)]).unsqueeze(0)
    cos, sin = decoder.rotary_emb(hidden, positions)
    bounds = [0]
    for b, t in shapes:
        bounds.append(bounds[-1] + b * t)
    new_suffix: list[list] = [[] for _ in caches]
    for i, layer in enumerate(decoder.layers):
        attn = layer.self_attn
        x = layer.input_layernorm(hidden)
        q = attn.q_proj(x).view(1, n_tokens, -1, attn.head_dim).transpose(1, 2)  # [1, heads, N, d]
        k = attn.k_proj(x).view(1, n_tokens, -1, attn.head_dim).transpose(1, 2)
        v = attn.v_proj(x).view(1, n_tokens, -1, attn.head_dim).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        outs = []
        for j, (cache, (b, t)) in enumerate(zip(caches, shapes)):
            lo, hi = bounds[j], bounds[j + 1]
            qj, kj, vj = (z[0, :, lo:hi].unflatten(1, (b, t)).transpose(0, 1) for z in (q, k, v))  # [B, heads, T, d]
            if cache.suffix is not None:
                old_k, old_v = cache.suffix[i]
                kj, vj = torch.cat([old_k, kj], dim=2), torch.cat([old_v, vj], dim=2)
            new_suffix[j].append((kj, vj))
            prefix_k, prefix_v = cache.prefix[i]
            outs.append(_attend(qj, prefix_k, prefix_v, kj, vj, attn.scaling).transpose(1, 2).reshape(b * t, -1))
        out = torch.cat(outs) if len(outs) > 1 else outs[0]
        hidden = hidden + attn.o_proj(out.unsqueeze(0))
        hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
    for cache, suffix in zip(caches, new_suffix):
        cache.suffix = suffix
    if every_position:
        return list(decoder.norm(hidden[0]).split([b * t for b, t in shapes]))
    last = torch.cat([torch.arange(lo + t - 1, lo + b * t, t, device=device)
                      for lo, (b, t) in zip(bounds, shapes)])  # each beam's last fed token
    return list(decoder.norm(hidden[0, last]).split([b for b, _ in shapes]))
