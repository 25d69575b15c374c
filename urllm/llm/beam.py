"""Beam search with one prompt prefill shared by all beams, and an optional prefix
trie: the same loop serves unconstrained and constrained decoding, so their costs
compare fairly.

The prompt is run once (batch 1); its KV cache is repeated for the beams, then each step
feeds one token per beam and reorders the cache by the surviving beams' parents.
Hypotheses are ranked by their summed log-probability divided by length**length_penalty.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from urllm.llm.trie import TitleTrie


@dataclass
class Hypothesis:
    tokens: list[int]  # generated ids, eos excluded
    score: float  # length-normalised log-probability
    items: list[int]  # item ids of the title (constrained decoding only)


@torch.no_grad()
def beam_search(
    model,
    prompt_ids: list[int],
    eos_id: int,
    num_beams: int = 10,
    max_new_tokens: int = 48,
    trie: TitleTrie | None = None,
    length_penalty: float = 1.0,
    stats: dict | None = None,
) -> list[Hypothesis]:
    """Up to `num_beams` finished hypotheses, best first. `stats`, if given, receives the
    number of decoding steps run."""
    device = next(model.parameters()).device
    out = model(torch.tensor([prompt_ids], device=device), use_cache=True)
    cache, logits = out.past_key_values, out.logits[:, -1]
    beams: list[list[int]] = [[]]
    nodes = [trie.root] if trie is not None else [None]
    scores = torch.zeros(1, device=device)
    finished: list[Hypothesis] = []
    step = -1
    for step in range(max_new_tokens):
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        if trie is not None:
            mask = torch.full_like(logprobs, float("-inf"))
            for b, node in enumerate(nodes):
                allowed = TitleTrie.allowed(node)
                if allowed:
                    mask[b, allowed] = 0.0
            logprobs = logprobs + mask
        total = (scores.view(-1, 1) + logprobs).view(-1)
        k = min(2 * num_beams, int(torch.isfinite(total).sum()))
        if k == 0:
            break
        best, flat = total.topk(k)
        vocab = logprobs.size(1)
        next_beams, next_nodes, next_scores, parents, next_tokens = [], [], [], [], []
        for score, index in zip(best.tolist(), flat.tolist()):
            parent, token = divmod(index, vocab)
            tokens = beams[parent] + [token]
            node = nodes[parent][token] if trie is not None else None
            if token == eos_id:
                items = TitleTrie.items(node) if trie is not None else []
                finished.append(Hypothesis(tokens[:-1], score / max(1, len(tokens)) ** length_penalty, items))
                continue
            next_beams.append(tokens)
            next_nodes.append(node)
            next_scores.append(score)
            parents.append(parent)
            next_tokens.append(token)
            if len(next_beams) == num_beams:
                break
        if not next_beams:
            break
        # Stop once no live beam can beat the worst of num_beams finished ones.
        finished.sort(key=lambda h: h.score, reverse=True)
        if len(finished) >= num_beams and max(next_scores) / max(1, step + 1) ** length_penalty < finished[num_beams - 1].score:
            break
        beams, nodes = next_beams, next_nodes
        scores = torch.tensor(next_scores, device=device)
        parent_index = torch.tensor(parents, device=device)
        if step == 0:
            cache.batch_repeat_interleave(len(parents))  # the prompt's cache, once per beam
        else:
            cache.reorder_cache(parent_index)
        out = model(torch.tensor(next_tokens, device=device).view(-1, 1), past_key_values=cache, use_cache=True)
        cache, logits = out.past_key_values, out.logits[:, -1]
    if not finished and trie is None:  # no eos within max_new_tokens: keep the live beams
        finished = [Hypothesis(t, float(s) / max(1, len(t)) ** length_penalty, []) for t, s in zip(beams, scores.tolist())]
    if stats is not None:
        stats["steps"] = step + 1
    finished.sort(key=lambda h: h.score, reverse=True)
    return finished[:num_beams]
