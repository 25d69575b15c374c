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
from urllm.llm.beam import beam_search, prefill
from urllm.llm.prompt import PromptTooLong
from urllm.llm.refine import TitleIndex, refine
from urllm.llm.trie import TitleTrie

VARIANTS = ("free", "constrained", "candidates", "refined")


@dataclass
class GenerationConfig:
    num_beams: int = 10  # beams, and outputs kept per variant
    max_new_tokens: int = 48  # longest answer in tokens
    top_k: int = 20  # length of every ranked list (HR@20 needs 20)
    candidates: int = 50  # dual-graph top-N the "candidates" trie is built from
    refine_m: int = 5  # Algorithm 1: top grounded items checked for the domain
    length_penalty: float = 1.0
    # weights and activations while generating: bfloat16 halves the memory each decode step
    # reads and runs 2.5x faster on CPUs with avx512_bf16 / AMX; "float32" for exact sums
    dtype: str = "bfloat16"


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
    """The model cast (in place) to cfg.dtype and put in eval mode; the LoRA adapter, if
    any, is cast with it. Call it after training: the fine-tune itself runs in float32."""
    import torch

    if cfg.dtype not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"GenerationConfig.dtype={cfg.dtype!r}: expected float32, bfloat16 or float16")
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
    """Runs the variants for one prompt. Tries are built once per domain."""

    def __init__(self, model, tokenizer, dataset: Dataset, cfg: GenerationConfig | None = None, titles: TitleIndex | None = None):
        self.model, self.tokenizer, self.dataset = model, tokenizer, dataset
        self.cfg = cfg or GenerationConfig()
        self.titles = titles or TitleIndex(dataset)
        self.eos_id = tokenizer.eos_token_id
        self._domain_tries: dict[int, TitleTrie] = {}

    def domain_trie(self, domain: int) -> TitleTrie:
        if domain not in self._domain_tries:
            items = self.dataset.items_of(domain).tolist()
            self._domain_tries[domain] = TitleTrie.from_items(self.tokenizer, [self.dataset.item_titles[i] for i in items], items)
        return self._domain_tries[domain]

    def candidate_trie(self, candidates: list[int]) -> TitleTrie:
        items = [int(i) for i in candidates if i >= 0]
        return TitleTrie.from_items(self.tokenizer, [self.dataset.item_titles[i] for i in items], items)

    def _beams(self, prompt_ids: list[int], trie: TitleTrie | None, prefilled):
        c = self.cfg
        return beam_search(self.model, prompt_ids, self.eos_id, c.num_beams, c.max_new_tokens, trie, c.length_penalty,
                           prefilled=prefilled)

    def run(self, prompt_text: str, domain: int, dual_graph_ranking: list[int], variants=VARIANTS) -> dict[str, Generation]:
        c, ds = self.cfg, self.dataset
        prompt_ids = self.tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        context = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        if context and len(prompt_ids) + c.max_new_tokens > context:
            raise PromptTooLong(
                f"prompt of {len(prompt_ids)} tokens + {c.max_new_tokens} new tokens exceeds the model's context of"
                f" {context}: lower PromptConfig.max_tokens"
            )
        fallback = [int(i) for i in dual_graph_ranking]
        prefilled = prefill(self.model, prompt_ids)  # the prompt runs once for every variant
        out: dict[str, Generation] = {}
        if "free" in variants or "refined" in variants:
            hyps = self._beams(prompt_ids, None, prefilled)
            texts = [self.tokenizer.decode(h.tokens, skip_special_tokens=True).strip() for h in hyps]
            items = [self.titles.match(t) for t in texts]
            outputs = flag_outputs(texts, items, ds.item_domain, domain)
            if "free" in variants:
                out["free"] = Generation("free", outputs, complete(items, fallback, c.top_k))
            if "refined" in variants:
                grounded = self.titles.ground(texts)
                refined, fell_back = refine(grounded, ds.item_domain, domain, fallback, c.refine_m)
                g_outputs = flag_outputs(texts, grounded, ds.item_domain, domain)
                out["refined"] = Generation("refined", g_outputs, complete(refined, fallback, c.top_k), fell_back,
                                            {"llm_items": [] if fell_back else refined})
        for variant in ("constrained", "candidates"):
            if variant not in variants:
                continue
            trie = self.domain_trie(domain) if variant == "constrained" else self.candidate_trie(fallback[: c.candidates])
            hyps = self._beams(prompt_ids, trie, prefilled)
            texts = [self.tokenizer.decode(h.tokens, skip_special_tokens=True).strip() for h in hyps]
            items = [h.items[0] if h.items else None for h in hyps]
            out[variant] = Generation(variant, flag_outputs(texts, items, ds.item_domain, domain), complete(items, fallback, c.top_k))
        return out
