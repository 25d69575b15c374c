"""One evaluation protocol for every method (DESIGN 2.6): full ranking of the target
among ALL items of its domain, pessimistic ties, metrics overall and per domain.

A scorer is anything with `scores(histories, domain) -> [B, n_items_of_domain]`, columns
in `dataset.items_of(domain)` order.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from urllm.data.dataset import Dataset, Example
from urllm.metrics import rank_of_target, summarize


class Scorer(Protocol):
    def scores(self, histories: list[np.ndarray], domain: int) -> torch.Tensor: ...


def rank_examples(
    scorer: Scorer, dataset: Dataset, examples: list[Example], batch_size: int = 256, top_n: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Ranks [n] of each example's target, their domains [n], and optionally each line's
    top-`top_n` item ids [n, top_n] (best first; ties broken by column order)."""
    n = len(examples)
    ranks = np.zeros(n, dtype=np.int64)
    domains = np.array([ex.domain for ex in examples], dtype=np.int64)
    top = np.full((n, top_n), -1, dtype=np.int64) if top_n else None  # -1 past the domain size
    for d in (0, 1):
        items = dataset.items_of(d)
        column = np.full(dataset.n_items, -1, dtype=np.int64)
        column[items] = np.arange(len(items))
        rows = np.flatnonzero(domains == d)
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            with torch.no_grad():
                scores = scorer.scores([examples[i].history for i in chunk], d).float()
            target_col = torch.from_numpy(column[[examples[i].target for i in chunk]])
            ranks[chunk] = rank_of_target(scores, target_col).numpy()
            if top is not None:
                k = min(top_n, scores.size(1))
                top[chunk, :k] = items[scores.topk(k, dim=1).indices.numpy()]
    return ranks, domains, top


def evaluate(scorer: Scorer, dataset: Dataset, split: str = "test", batch_size: int = 256) -> dict:
    ranks, domains, _ = rank_examples(scorer, dataset, dataset.splits[split], batch_size)
    return summarize(ranks, domains, dataset.domains)
