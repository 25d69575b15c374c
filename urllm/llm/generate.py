"""The generation variants of URLLM (step 5), each returning ranked item ids, the raw
texts, and per-output flags:

- free: beam search over free text (what the paper's LLM does);
- constrained: beam search inside a prefix trie of the target domain's titles;
- candidates: the same, inside a trie of the dual-graph model's top-N items for the user;
- refined: the free texts grounded by BM25, with the dual-graph fallback (Algorithm 1).

Every ranked list shorter than K is completed from the dual-graph ranking (as in the
paper). Flags per output: `valid` (names a real item), `in_domain` (that item is in the
target domain), `duplicate` (same item as an earlier output).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from urllm.data.dataset import Dataset
from urllm.llm.beam import Search, beam_searches, prefill
from urllm.llm.config import VARIANTS, GenerationConfig
from urllm.llm.prompt import PromptTooLong
from urllm.llm.refine import TitleIndex, refine
from urllm.llm.trie import TitleTrie


@dataclass
class Output:
    text: str
    item: int | None
    valid: bool
    in_domain: bool
    duplicate: bool


@dataclass
class Generation:
    variant: str
    outputs: list[Output]
    ranking: list[int]  # top_k item ids, best first
    fell_back: bool = False  # refined: the dual-graph ranking was used
    extra: dict = field(default_factory=dict)


def for_generation(model, cfg: GenerationConfig):
    """The model for generating: cast to cfg.dtype, in eval mode, and with cfg.merge_adapter
    a LoRA adapter folded into its weights (peft `merge_and_unload`: the returned model is
    the plain base model; the wrapper is spent, so save an adapter before). Call it after
    training: the fine-tune itself runs in float32. Use the returned model."""
    import torch

    cfg.validate()
    if cfg.merge_adapter and hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    return model.to(getattr(torch, cfg.dtype)).eval()


def flag_outputs(texts: list[str], items: list[int | None], item_domain: np.ndarray, domain: int) -> list[Output]:
    seen: set[int] = set()
    out = []
    for text, item in zip(texts, items):
        out.append(Output(text, item, item is not None, item is not None and int(item_domain[item]) == domain, item in seen))
        if item is not None:
            seen.add(item)
    return out


def complete(items: list[int], fallback: list[int], k: int) -> list[int]:
    """The first k distinct items of `items`, then of the dual-graph ranking."""
    ranking, seen = [], set()
    for item in [*items, *fallback]:
        if item is not None and item >= 0 and item not in seen:
            seen.add(item)
            ranking.append(item)
            if len(ranking) == k:
                break
    return ranking


class Generator:
    """Runs the variants for a batch of prompts. Tries are built once per domain."""

    def __init__(self, model, tokenizer, dataset: Dataset, cfg: GenerationConfig | None = None, titles: TitleIndex | None = None):
        self.model, self.tokenizer, self.dataset = model, tokenizer, dataset
        self.cfg = cfg or GenerationConfig()
        self.titles = titles or TitleIndex(dataset)
        self.eos_id = tokenizer.eos_token_id
        self._domain_tries: dict[int, TitleTrie] = {}
        self._free_limits: tuple[frozenset, int] | None = None

    def domain_trie(self, domain: int) -> TitleTrie:
        if domain not in self._domain_tries:
            items = self.dataset.items_of(domain).tolist()
            self._domain_tries[domain] = TitleTrie.from_items(self.tokenizer, [self.dataset.item_titles[i] for i in items], items)
        return self._domain_tries[domain]

    def candidate_trie(self, candidates: list[int]) -> TitleTrie:
        items = [int(i) for i in candidates if i >= 0]
        return TitleTrie.from_items(self.tokenizer, [self.dataset.item_titles[i] for i in items], items)

    def free_limits(self) -> tuple[frozenset, int]:
        """(tokens that end a free answer, its longest length in tokens)."""
        if self._free_limits is None:
            c = self.cfg
            if not c.stop_at_title_end:
                self._free_limits = (frozenset(), c.max_new_tokens)
            else:
                texts = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))])
                stops = frozenset(i for i, t in enumerate(texts) if "\n" in t)
                lengths = [len(ids) for ids in self.tokenizer(self.dataset.item_titles, add_special_tokens=False)["input_ids"]]
                self._free_limits = (stops, min(c.max_new_tokens, max(lengths, default=0) + 2))
        return self._free_limits

    def _prompt_ids(self, prompt_text: str) -> list[int]:
        c = self.cfg
        prompt_ids = self.tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        context = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        if context and len(prompt_ids) + c.max_new_tokens > context:
            raise PromptTooLong(
                f"prompt of {len(prompt_ids)} tokens + {c.max_new_tokens} new tokens exceeds the model's context of"
                f" {context}: lower PromptConfig.max_tokens"
            )
        return prompt_ids

    def run(self, prompt_text: str, domain: int, dual_graph_ranking: list[int], variants=VARIANTS) -> dict[str, Generation]:
        return self.run_many([(prompt_text, domain, dual_graph_ranking)], variants)[0]

    def run_many(self, jobs: list[tuple[str, int, list[int]]], variants=VARIANTS) -> list[dict[str, Generation]]:
        """For each (prompt text, target domain, dual-graph ranking): {variant: Generation}.
        Each prompt is prefilled once for all its variants, and every search of every prompt
        is stepped together (urllm/llm/beam.py `beam_searches`)."""
        c = self.cfg
        stops, free_max = self.free_limits() if {"free", "refined"} & set(variants) else (frozenset(), c.max_new_tokens)
        searches, plan = [], []  # plan: (job, variant searched, its trie) per search
        for j, (prompt_text, domain, ranking) in enumerate(jobs):
            prefilled = prefill(self.model, self._prompt_ids(prompt_text))  # the prompt runs once for every variant
            if "free" in variants or "refined" in variants:
                searches.append(Search(prefilled, self.eos_id, c.num_beams, free_max, None, c.length_penalty, stops))
                plan.append((j, "free", None))
            for variant in ("constrained", "candidates"):
                if variant in variants:
                    fallback = [int(i) for i in ranking]
                    trie = self.domain_trie(domain) if variant == "constrained" else self.candidate_trie(fallback[: c.candidates])
                    searches.append(Search(prefilled, self.eos_id, c.num_beams, c.max_new_tokens, trie, c.length_penalty))
                    plan.append((j, variant, trie))
        out: list[dict[str, Generation]] = [{} for _ in jobs]
        hyps_of = beam_searches(self.model, searches, batched=c.batch_lines > 1)
        for (j, variant, _), hyps in zip(plan, hyps_of):
            _, domain, ranking = jobs[j]
            out[j] |= self._generations(variant, hyps, domain, [int(i) for i in ranking], variants)
        return out

    def _generations(self, searched: str, hyps, domain: int, fallback: list[int], variants) -> dict[str, Generation]:
        c, ds = self.cfg, self.dataset
        texts = [self.tokenizer.decode(h.tokens, skip_special_tokens=True).strip() for h in hyps]
        if searched != "free":
            items = [h.items[0] if h.items else None for h in hyps]
            return {searched: Generation(searched, flag_outputs(texts, items, ds.item_domain, domain), complete(items, fallback, c.top_k))}
        out = {}
        items = [self.titles.match(t) for t in texts]
        if "free" in variants:
            out["free"] = Generation("free", flag_outputs(texts, items, ds.item_domain, domain), complete(items, fallback, c.top_k))
        if "refined" in variants:
            grounded = self.titles.ground(texts)
            refined, fell_back = refine(grounded, ds.item_domain, domain, fallback, c.refine_m)
            out["refined"] = Generation("refined", flag_outputs(texts, grounded, ds.item_domain, domain),
                                        complete(refined, fallback, c.top_k), fell_back, {"llm_items": [] if fell_back else refined})
        return out
