"""The LLM as a scorer of given items: for a prompt and candidate titles, the mean
log-probability per token of each title followed by the end token, which is exactly the
answer the LoRA adapter is trained to give (urllm/llm/finetune.py `encode_example`).

    ids = answer_ids(tokenizer, [dataset.item_titles[i] for i in candidates])
    scores = score_many(model, [(prompt_ids, ids)])[0]       # [len(candidates)], higher is better

On Llama-family models every candidate of every prompt runs in one forward pass after ONE
copy of its prompt's keys and values (urllm/llm/shared_prefix.py): the prompt is prefilled
once and 20 candidates add ~500 tokens, not 20 prompts. Other architectures take a padded
batch of prompt + candidate per prompt (the same numbers, more work), so any local HF
causal LM scores by configuration.
"""
from __future__ import annotations

import numpy as np
import torch

from urllm.llm import shared_prefix
from urllm.llm.beam import _parts


def answer_ids(tokenizer, titles: list[str]) -> list[list[int]]:
    """Each title's tokens + eos, as the fine-tune encodes a target."""
    ids = tokenizer(list(titles), add_special_tokens=False)["input_ids"] if titles else []
    return [list(t) + [tokenizer.eos_token_id] for t in ids]


def _mean_logprobs(head, hidden: list[torch.Tensor], targets: list[list[int]]) -> torch.Tensor:
    """hidden[i] [len(targets[i]), H]: the states that predict targets[i], in order. One head
    product for all of them; log-softmax in float32. Returns [len(targets)]."""
    rows = torch.cat(hidden)
    logp = torch.log_softmax(head(rows).float(), dim=-1)
    flat = torch.tensor([t for ts in targets for t in ts], device=logp.device)
    picked = logp.gather(1, flat[:, None])[:, 0]
    return torch.stack([chunk.mean() for chunk in picked.split([len(t) for t in targets])])


def _prefill(prompts: list[list[int]], decoder, device, batched: bool) -> list[tuple[shared_prefix.SharedPrefixCache, torch.Tensor]]:
    """Per prompt: (its keys and values as a shared-prefix cache, its last position's hidden
    state [1, hidden]). `batched` runs every prompt in ONE right-padded forward pass, so
    each weight is read (and cast, under autocast) once for all of them: the ranking loss's
    training step. With right padding no mask is needed (causal attention keeps every real
    position off the padding); each cache is a view of its prompt's real positions. The
    re-ranker's inference keeps one pass per prompt (no padding; its measured numbers)."""
    if not batched:
        outs = [decoder(input_ids=torch.tensor([p], device=device), use_cache=True) for p in prompts]
        return [(shared_prefix.SharedPrefixCache.from_hf(o.past_key_values), o.last_hidden_state[0, -1:]) for o in outs]
    if not prompts:
        return []
    lengths = [len(p) for p in prompts]
    ids = torch.zeros((len(prompts), max(lengths)), dtype=torch.long, device=device)
    for row, p in enumerate(prompts):
        ids[row, : len(p)] = torch.tensor(p, device=device)
    out = decoder(input_ids=ids, use_cache=True)
    layers = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
    return [(shared_prefix.SharedPrefixCache([(k[row : row + 1, :, :n], v[row : row + 1, :, :n]) for k, v in layers]),
             out.last_hidden_state[row, n - 1 : n]) for row, n in enumerate(lengths)]


GROUP = 5  # candidates per search: titles sorted by length, so each group pads little


def shared_title_scores(model, jobs: list[tuple[list[int], list[list[int]]]], batch_prompts: bool = False) -> list[torch.Tensor]:
    """score_many's shared-prompt pass as tensors, differentiable when called with grad
    enabled (the ranking loss of urllm/llm/finetune.py trains through it). A prompt's
    candidates, sorted by length, go GROUP at a time as the beams of one search after the
    prompt's one copy of keys and values, right-padded to the group's longest: causal
    attention keeps the padding out of every real position, and attention runs once per
    group and layer rather than once per candidate (padding every title to the longest
    would nearly double the tokens on Art-Office). `batch_prompts`: see _prefill."""
    decoder, head = _parts(model)
    device = head.weight.device
    caches, inputs, plan, lasts = [], [], [], []  # plan: per job, its groups as lists of candidate indexes
    for (prefix, last), (_, candidates) in zip(_prefill([p for p, _ in jobs], decoder, device, batch_prompts), jobs):
        lasts.append(last)
        order = sorted((i for i in range(len(candidates)) if len(candidates[i]) > 1), key=lambda i: len(candidates[i]))
        groups = [order[g : g + GROUP] for g in range(0, len(order), GROUP)]
        for group in groups:  # the last token of a title is only predicted, never fed
            width = max(len(candidates[i]) - 1 for i in group)
            fed = torch.zeros((len(group), width), dtype=torch.long, device=device)
            for row, i in enumerate(group):
                fed[row, : len(candidates[i]) - 1] = torch.tensor(candidates[i][:-1], device=device)
            caches.append(prefix.fork())
            inputs.append(fed)
        plan.append(groups)
    states = iter(shared_prefix.step_many(decoder, caches, inputs, every_position=True) if inputs else [])
    out = []
    for last, groups, (_, candidates) in zip(lasts, plan, jobs):
        hidden = [last] * len(candidates)  # a one-token answer (eos alone) is predicted by the prompt's last state
        for group in groups:
            grid = next(states).view(len(group), -1, last.shape[-1])
            for row, i in enumerate(group):
                hidden[i] = torch.cat([last, grid[row, : len(candidates[i]) - 1]])
        out.append(_mean_logprobs(head, hidden, candidates) if candidates else torch.zeros(0, device=device))
    return out


def _score_padded(model, jobs: list[tuple[list[int], list[list[int]]]]) -> list[np.ndarray]:
    decoder, head = _parts(model)
    device = head.weight.device
    out = []
    for prompt_ids, candidates in jobs:
        if not candidates:
            out.append(np.zeros(0))
            continue
        rows = [prompt_ids + ids[:-1] for ids in candidates]
        width = max(map(len, rows))
        ids = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, row in enumerate(rows):
            ids[r, : len(row)] = torch.tensor(row)
            mask[r, : len(row)] = 1
        with torch.inference_mode():
            states = decoder(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
            start = len(prompt_ids) - 1  # the prompt's last position predicts a title's first token
            hidden = [states[r, start : start + len(c)] for r, c in enumerate(candidates)]
            out.append(_mean_logprobs(head, hidden, candidates).cpu().numpy())
    return out


def score_many(model, jobs: list[tuple[list[int], list[list[int]]]], shared: bool | None = None) -> list[np.ndarray]:
    """For each (prompt ids, candidates' answer ids): the mean log-probability per token of
    each candidate after the prompt, [n_candidates] float. `shared` None takes the shared-prompt
    pass where the model supports it (True insists, False forces the padded batch)."""
    decoder, _ = _parts(model)
    use_shared = shared_prefix.supported(decoder) if shared is None else shared
    if use_shared and not shared_prefix.supported(decoder):
        raise ValueError(f"shared-prompt scoring needs a Llama-family model, not {type(decoder).__name__}")
    if not use_shared:
        return _score_padded(model, jobs)
    with torch.inference_mode():
        return [t.float().cpu().numpy() for t in shared_title_scores(model, jobs)]
