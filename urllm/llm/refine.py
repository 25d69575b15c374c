"""Refinement (URLLM Algorithm 1): ground free text to real items with BM25 over all
titles, and fall back to the dual-graph ranking when grounding lands outside the target
domain. bm25s does the BM25 (sparse-matrix scoring, far faster than a hand-written loop
over 38k titles)."""
from __future__ import annotations

import re

import bm25s
import numpy as np

from urllm.data.dataset import Dataset

_NON_WORD = re.compile(r"[^0-9a-z]+")


def normalize_title(text: str) -> str:
    """Lowercase, punctuation to spaces, single spaces: how titles are matched exactly."""
    return _NON_WORD.sub(" ", text.lower()).strip()


class TitleIndex:
    """Exact (normalised) title lookup and BM25 grounding over every item of a dataset."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self.exact: dict[str, list[int]] = {}
        for item, title in enumerate(dataset.item_titles):
            self.exact.setdefault(normalize_title(title), []).append(item)
        self.bm25 = bm25s.BM25()
        self.bm25.index(self._tokens(dataset.item_titles), show_progress=False)

    @staticmethod
    def _tokens(texts: list[str]):
        return bm25s.tokenize([normalize_title(t) for t in texts], stopwords=None, show_progress=False)

    def match(self, text: str) -> int | None:
        """The item a text names exactly (after normalisation), or None."""
        items = self.exact.get(normalize_title(text))
        return items[0] if items else None

    def ground(self, texts: list[str]) -> list[int | None]:
        """The best BM25 item for each text (None for a text with no scoring word)."""
        out: list[int | None] = []
        for text in texts:
            tokens = self._tokens([text])
            if not any(len(ids) for ids in tokens.ids):
                out.append(None)
                continue
            docs, scores = self.bm25.retrieve(tokens, k=1, show_progress=False)
            out.append(int(docs[0, 0]) if scores[0, 0] > 0 else None)
        return out


def refine(
    grounded: list[int | None], item_domain: np.ndarray, domain: int, fallback: list[int], m: int = 5
) -> tuple[list[int], bool]:
    """Algorithm 1: if any of the top `m` grounded items is outside the target domain (or
    nothing could be grounded), return the dual-graph ranking `fallback`; otherwise the
    grounded items, without repeats. Returns (items, fell_back)."""
    top = [g for g in grounded[:m] if g is not None]
    if not top or any(int(item_domain[g]) != domain for g in top):
        return list(fallback), True
    seen, items = set(), []
    for g in grounded:
        if g is not None and g not in seen and int(item_domain[g]) == domain:
            seen.add(g)
            items.append(g)
    return items, False


def fuse(dual_ranking: list[int], llm_items: list[int], weight: float, k: int, c: float = 60.0) -> list[int]:
    """The full pipeline's list: weighted reciprocal-rank fusion of the dual-graph ranking
    and the LLM's grounded in-domain items, score(i) = 1/(c + dual rank) + weight/(c + LLM
    rank) (an absent item adds nothing). weight 0 gives the dual-graph ranking exactly;
    the weight is chosen on validation lines (stage2.choose_fusion_weight), so the LLM
    only moves items when that helped on lines the test never sees."""
    score: dict[int, float] = {}
    for rank, item in enumerate(dual_ranking, 1):
        score[item] = score.get(item, 0.0) + 1.0 / (c + rank)
    if weight > 0:
        for rank, item in enumerate(dict.fromkeys(llm_items), 1):
            score[item] = score.get(item, 0.0) + weight / (c + rank)
    order = {item: i for i, item in enumerate([*dual_ranking, *llm_items])}  # ties: dual-graph order first
    return sorted(score, key=lambda i: (-score[i], order[i]))[:k]
