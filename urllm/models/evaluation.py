"""One evaluation protocol for every method (DESIGN 2.6): full ranking of the target
among ALL items of its domain, pessimistic ties, metrics overall and per domain.

A scorer is anything with `scores(histories, domain) -> [B, n_items_of_domain]`, a CPU
tensor (a model on a GPU scores there and hands its rows back), columns in
`dataset.items_of(domain)` order.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from urllm.data.dataset import Dataset, Example
from urllm.metrics import rank_in_list, rank_of_target, summarize


class Scorer(Protocol):
    def scores(self, histories: list[np.ndarray], domain: int) -> torch.Tensor: ...  # on the CPU


def without_history(scores: torch.Tensor, histories: list[np.ndarray], column: np.ndarray) -> torch.Tensor:
    """`scores` [B, n_items_of_domain] with each row's own history items (those of this
    domain: column >= 0) set to -inf, so they rank last. A target that is itself a history
    item (a repeat) then ranks last too: excluding history turns repeats into misses."""
    out = scores.clone()
    for row, history in enumerate(histories):
        cols = column[history]
        out[row, torch.from_numpy(cols[cols >= 0])] = float("-inf")
    return out


def rank_examples(
    scorer: Scorer, dataset: Dataset, examples: list[Example], batch_size: int = 256, top_n: int = 0,
    exclude_history: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Ranks [n] of each example's target, their domains [n], and optionally each line's
    top-`top_n` item ids [n, top_n] (best first; ties broken by column order). The protocol
    ranks every item of the domain, the user's own history included (as the paper does);
    `exclude_history` drops those items from the ranking (`without_history`)."""
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
            if exclude_history:
                scores = without_history(scores, [examples[i].history for i in chunk], column)
            target_col = torch.from_numpy(column[[examples[i].target for i in chunk]])
            ranks[chunk] = rank_of_target(scores, target_col).numpy()
            if top is not None:
                k = min(top_n, scores.size(1))
                top[chunk, :k] = items[scores.topk(k, dim=1).indices.numpy()]
    return ranks, domains, top


def evaluate(scorer: Scorer, dataset: Dataset, split: str = "test", batch_size: int = 256) -> dict:
    ranks, domains, _ = rank_examples(scorer, dataset, dataset.splits[split], batch_size)
    return summarize(ranks, domains, dataset.domains)


class CompletedRanks:
    """Full ranks of each line's target for ranked LISTS (an LLM variant's top-K), with the
    list completed by a scorer's full ranking of the target domain (DESIGN 2.6: a list
    shorter than the domain is completed from the dual-graph ranking). So a list method's
    rank is comparable with a stage-1 method's on every metric, MRR included: the target
    at position p of the list ranks p; absent, it ranks len(list) + the domain's items not
    in the list that score at least as high (ties pessimistic, as in `rank_of_target`).
    Score rows are computed lazily in batches and kept per line."""

    def __init__(self, scorer: Scorer, dataset: Dataset, split: str = "test", batch_size: int = 256):
        self.scorer, self.dataset, self.examples = scorer, dataset, dataset.splits[split]
        self.batch_size = batch_size
        self._rows: dict[int, np.ndarray] = {}
        self._column = np.full(dataset.n_items, -1, dtype=np.int64)
        for d in (0, 1):
            items = dataset.items_of(d)
            self._column[items] = np.arange(len(items))

    def prepare(self, lines) -> None:
        """Score the given lines (batched by target domain) ahead of `rank` calls."""
        todo = [line for line in lines if line not in self._rows]
        for d in (0, 1):
            mine = [line for line in todo if self.examples[line].domain == d]
            for start in range(0, len(mine), self.batch_size):
                chunk = mine[start : start + self.batch_size]
                with torch.no_grad():
                    scores = self.scorer.scores([self.examples[i].history for i in chunk], d).float().numpy()
                self._rows |= {line: row for line, row in zip(chunk, scores)}

    def scores_of(self, line: int, items: list[int]) -> np.ndarray:
        """The scorer's scores of `items` (items of the line's target domain) on `line`."""
        self.prepare([line])
        return self._rows[line][self._column[np.asarray(items, dtype=np.int64)]] if len(items) else np.zeros(0)

    def rank(self, line: int, ranking: list[int]) -> int:
        ex = self.examples[line]
        ranking = [int(i) for i in ranking]
        listed_at = rank_in_list(ranking, ex.target)
        if listed_at != float("inf"):
            return int(listed_at)
        self.prepare([line])
        row = self._rows[line]
        target_score = row[self._column[ex.target]]
        listed = {int(self._column[i]) for i in ranking if self.dataset.item_domain[i] == ex.domain}
        above = int((row >= target_score).sum()) - sum(bool(row[c] >= target_score) for c in listed)
        return len(ranking) + above
