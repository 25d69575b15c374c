"""Beam search for the LLM variants, with one prompt prefill shared by all beams, and
many searches (several variants of several lines) stepped together.

The prompt runs once (batch 1). For Llama-family models its keys/values then stay one
shared copy that every beam attends to (urllm/llm/shared_prefix.py); for others HF's KV
cache is indexed by each step's surviving beams (`reorder_cache` also does the first
fan-out). Each step feeds one token per beam. Two searches:

- free text (`trie=None`): the usual beam search; a hypothesis scores its summed
  log-probability divided by length ** length_penalty.
- inside a title trie: at every branch point the model's probabilities are renormalised
  over the tokens the trie allows there, and the LM head is computed for those tokens
  only. A token with no alternative costs nothing, so runs of forced tokens (the tail of
  a long title) are fed several at a time in one forward pass, and a hypothesis's score
  is the summed log-probability of its choices. Scores only fall as a hypothesis grows,
  so the search stops exactly when no live beam can beat the num_beams-th finished one.

Each search is written once, as a generator that yields (parents, tokens to feed) and is
sent back the new last hidden states; `beam_search` drives one, `beam_searches` drives
many at once: the searches that feed the same number of tokens share one forward pass
(one matrix product per layer over all their beams; attention stays per search, against
its own prompt), which is what makes a 2-core CPU fast. A search's result does not
depend on what it is batched with, up to float rounding (tested).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch

from urllm.llm import shared_prefix
from urllm.llm.trie import TitleTrie


@dataclass
class Hypothesis:
    tokens: list[int]  # generated ids, eos excluded
    score: float
    items: list[int]  # item ids of the title (trie search only)


def _parts(model):
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder(), base.get_output_embeddings()


def prefill(model, prompt_ids: list[int]):
    """(KV cache, last hidden state [1, H]) of the prompt: run it once, search it many times."""
    decoder, head = _parts(model)
    with torch.inference_mode():
        out = decoder(input_ids=torch.tensor([prompt_ids], device=head.weight.device), use_cache=True)
    cache = out.past_key_values
    if shared_prefix.supported(decoder):
        cache = shared_prefix.SharedPrefixCache.from_hf(cache)
    return cache, out.last_hidden_state[:, -1]


def _fork(cache):
    """A private cache for one search over a prefilled prompt."""
    return cache.fork() if isinstance(cache, shared_prefix.SharedPrefixCache) else copy.deepcopy(cache)


@dataclass
class Search:
    """One beam search over a prefilled prompt: `trie` None for free text."""
    prefilled: tuple  # (cache, last hidden [1, H]) from `prefill`; its cache is copied, never changed
    eos_id: int
    num_beams: int = 10
    max_new_tokens: int = 48
    trie: TitleTrie | None = None
    length_penalty: float = 1.0
    stop_ids: frozenset = frozenset()  # free text: tokens that end an answer like eos (a newline)
    max_forced: int = 32
    stats: dict = field(default_factory=dict)  # receives the decoding steps and forward passes


def _generator(head, s: Search, first: torch.Tensor):
    """The search as a generator; `first` is what it starts from (see `_for_searches`)."""
    if s.max_new_tokens < 1 or s.num_beams < 1:
        raise ValueError(f"max_new_tokens={s.max_new_tokens} and num_beams={s.num_beams} must be at least 1")
    if s.trie is None:
        return _free(head, first, s.eos_id, s.num_beams, s.max_new_tokens, s.length_penalty, s.stats, s.stop_ids)
    return _in_trie(head, first, s.trie, s.num_beams, s.max_new_tokens, s.max_forced, s.stats)


def _for_searches(head, hiddens: list[torch.Tensor], free: list[bool]) -> list[torch.Tensor]:
    """What each search is sent after a step: a free search the full-vocabulary logits (one
    LM-head product over every free search's beams: the head is 28M weights, read once per
    step rather than once per search), a trie search its hidden states (it scores only the
    tokens its trie allows)."""
    rows = [h for h, f in zip(hiddens, free) if f]
    if not rows:
        return hiddens
    logits = iter(head(torch.cat(rows)).split([h.shape[0] for h in rows]))
    return [next(logits) if f else h for h, f in zip(hiddens, free)]


def beam_search(
    model,
    prompt_ids: list[int],
    eos_id: int,
    num_beams: int = 10,
    max_new_tokens: int = 48,
    trie: TitleTrie | None = None,
    length_penalty: float = 1.0,
    stats: dict | None = None,
    max_forced: int = 32,
    prefilled=None,
    stop_ids: frozenset = frozenset(),
) -> list[Hypothesis]:
    """Up to `num_beams` finished hypotheses, best first. `stats`, if given, receives
    the number of decoding steps (positions generated) and forward passes. `prefilled`
    (from `prefill`) skips the prompt pass; its cache is copied, never changed."""
    search = Search(prefilled if prefilled is not None else prefill(model, prompt_ids), eos_id, num_beams, max_new_tokens,
                    trie, length_penalty, stop_ids, max_forced, stats if stats is not None else {})
    return beam_searches(model, [search], batched=False)[0]


def beam_searches(model, searches: list[Search], batched: bool = True) -> list[list[Hypothesis]]:
    """The hypotheses of every search, in order. With `batched` (and a Llama-family model),
    every search's next feed runs in one forward pass per round."""
    decoder, head = _parts(model)
    results: list = [None] * len(searches)
    free = [s.trie is None for s in searches]
    with torch.inference_mode():
        firsts = _for_searches(head, [s.prefilled[1] for s in searches], free) if batched else \
            [_for_searches(head, [s.prefilled[1]], [f])[0] for s, f in zip(searches, free)]
        gens = [_generator(head, s, first) for s, first in zip(searches, firsts)]
        caches = [_fork(s.prefilled[0]) for s in searches]
        pending = {}
        for j, gen in enumerate(gens):
            try:
                pending[j] = next(gen)
            except StopIteration as done:
                results[j] = done.value
        shared = all(isinstance(c, shared_prefix.SharedPrefixCache) for c in caches)
        while pending:
            # batched: every pending search in one forward pass, whatever its feed width
            groups = [list(pending)] if batched and shared else [[j] for j in pending]
            for group in groups:
                hiddens = _advance_many(decoder, [caches[j] for j in group], [pending[j] for j in group])
                for j, sent in zip(group, _for_searches(head, hiddens, [free[j] for j in group])):
                    try:
                        pending[j] = gens[j].send(sent)
                    except StopIteration as done:
                        results[j] = done.value
                        del pending[j]
    return results


def _advance_many(decoder, caches: list, requests: list[tuple[list[int], list[list[int]]]]) -> list[torch.Tensor]:
    """Keep each search's beams `parents`, feed them their tokens; their last hidden states."""
    device = decoder.get_input_embeddings().weight.device
    if len(caches) == 1 and not isinstance(caches[0], shared_prefix.SharedPrefixCache):
        parents, feed = requests[0]
        cache = caches[0]
        cache.reorder_cache(torch.tensor(parents, device=device))
        out = decoder(input_ids=torch.tensor(feed, device=device), past_key_values=cache, use_cache=True)
        return [out.last_hidden_state[:, -1]]
    for cache, (parents, _) in zip(caches, requests):
        cache.reorder(torch.tensor(parents, device=device))
    return shared_prefix.step_many(decoder, caches, [torch.tensor(feed, device=device) for _, feed in requests])


def _free(head, logits, eos_id, num_beams, max_new_tokens, length_penalty, stats, stop_ids=frozenset()):
    """Free-text beam search: starts from the prompt's next-token logits, is sent each
    step's logits [beams, vocab]."""
    device = head.weight.device
    beams: list[list[int]] = [[]]
    scores = torch.zeros(1, device=device)
    finished: list[Hypothesis] = []
    step, forwards = 0, 1
    for step in range(1, max_new_tokens + 1):
        total = (scores.view(-1, 1) + torch.log_softmax(logits.float(), dim=-1)).view(-1)
        best, flat = total.topk(min(2 * num_beams, total.numel()))
        vocab = logits.size(1)
        live, live_scores, parents = [], [], []
        for score, index in zip(best.tolist(), flat.tolist()):
            parent, token = divmod(index, vocab)
            if token == eos_id or token in stop_ids:
                finished.append(Hypothesis(beams[parent], score / max(1, step) ** length_penalty, []))
                continue
            live.append(beams[parent] + [token])
            live_scores.append(score)
            parents.append(parent)
            if len(live) == num_beams:
                break
        finished.sort(key=lambda h: h.score, reverse=True)
        if not live:  # every candidate ended the answer
            break
        if len(finished) >= num_beams and max(live_scores) / step ** length_penalty < finished[num_beams - 1].score:
            break
        if step == max_new_tokens:
            break
        beams, scores = live, torch.tensor(live_scores, device=device)
        logits = yield parents, [[b[-1]] for b in live]
        forwards += 1
    if len(finished) < num_beams:  # no eos within max_new_tokens: keep the live beams too
        finished += [Hypothesis(t, s / max(1, len(t)) ** length_penalty, []) for t, s in zip(live, live_scores)]
        finished.sort(key=lambda h: h.score, reverse=True)
    stats.update(steps=step, forwards=forwards)
    return finished[:num_beams]


def _forced_run(node: dict, token: int, limit: int, eos_id: int) -> list[int]:
    """`token`, then the tokens that follow it with no alternative (eos excluded)."""
    run, node = [token], node[token]
    while len(run) < limit:
        allowed = TitleTrie.allowed(node)
        if len(allowed) != 1 or allowed[0] == eos_id:
            break
        run.append(allowed[0])
        node = node[allowed[0]]
    return run


def _in_trie(head, hidden, trie: TitleTrie, num_beams, max_new_tokens, max_forced, stats):
    # live beams: (tokens, trie node, score)
    beams: list[tuple[list[int], dict, float]] = [([], trie.root, 0.0)]
    finished: list[Hypothesis] = []
    forwards, generated = 1, 0
    while beams:
        union = sorted({t for _, node, _ in beams for t in TitleTrie.allowed(node)})
        column = {t: i for i, t in enumerate(union)}
        logits = hidden.float() @ head.weight[union].float().T
        if getattr(head, "bias", None) is not None:
            logits = logits + head.bias[union].float()
        candidates = []
        for b, (tokens, node, score) in enumerate(beams):
            allowed = TitleTrie.allowed(node)
            logprobs = torch.log_softmax(logits[b, [column[t] for t in allowed]], dim=0).tolist()
            candidates += [(score + lp, b, t) for t, lp in zip(allowed, logprobs)]
        candidates.sort(key=lambda c: c[0], reverse=True)
        live, parents = [], []
        for score, b, token in candidates:
            tokens, node, _ = beams[b]
            if token == trie.eos_id:
                finished.append(Hypothesis(tokens, score, TitleTrie.items(node[token])))
            elif len(live) < num_beams:
                live.append((tokens, node, score, token))
                parents.append(b)
            if len(finished) >= num_beams and len(live) == num_beams:
                break
        finished.sort(key=lambda h: h.score, reverse=True)
        finished = finished[:num_beams]
        if len(finished) == num_beams:  # scores only fall: a live beam below the worst kept one is done
            keep = [i for i, (_, _, s, _) in enumerate(live) if s > finished[-1].score]
            live, parents = [live[i] for i in keep], [parents[i] for i in keep]
        if not live or generated >= max_new_tokens:
            break
        runs = [_forced_run(node, token, max_forced, trie.eos_id) for _, node, _, token in live]
        width = min(len(r) for r in runs)  # feed the forced tokens every beam shares in length
        beams = []
        for (tokens, node, score, _), run in zip(live, runs):
            for t in run[:width]:
                node = node[t]
            beams.append((tokens + run[:width], node, score))
        hidden = yield parents, [r[:width] for r in runs]
        forwards += 1
        generated += width
    stats.update(steps=generated, forwards=forwards)
    return finished[:num_beams]
