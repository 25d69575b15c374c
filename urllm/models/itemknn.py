"""Item-to-item transition baseline (`itemknn`): "what followed this item in training".

Counts come from the TRAIN split only (`graph_sequences`, the sequences the item graphs
use), so no valid or test item ever enters a count. In every training sequence each item
`a` and each item `b` up to `window` positions after it make a directed pair a -> b of
weight 1/gap, within a domain and across the two. A line's score for item i of the target
domain sums, over its most recent `history_len` items h (age 0 = the last one),

    recency**age * (cross_weight if h is of the other domain else 1) * T[h, i] / out[h]**norm

where out[h] is the row sum of T. A tiny popularity prior then orders the items no
transition reaches (and breaks ties), as the popularity baseline would. No randomness.
"""
from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
import torch

from urllm.data.dataset import Dataset, Example
from urllm.models.config import ItemKNNConfig
from urllm.models.evaluation import evaluate
from urllm.models.popularity import Popularity
from urllm.models.sequences import graph_sequences

# Weight of the popularity prior, relative to a line's best transition score (rows are
# scaled to a maximum of 1 first). Small enough to move only ties and near-ties (score
# differences under 1e-6 of the row's best); float32 keeps it visible on most rows.
PRIOR = 1e-6


def transition_matrix(sequences: list[np.ndarray], n_items: int, window: int) -> sp.csr_matrix:
    """T[a, b] = sum over training pairs a -> b, b at most `window` positions after a, of 1/gap."""
    flat = np.concatenate([np.zeros(0, np.int64), *sequences]).astype(np.int64)
    owner = np.repeat(np.arange(len(sequences)), [len(s) for s in sequences])  # sequence of each position
    rows, cols, vals = [], [], []
    for gap in range(1, window + 1):
        same = owner[:-gap] == owner[gap:]  # both ends in one sequence (empty when too short)
        rows.append(flat[:-gap][same])
        cols.append(flat[gap:][same])
        vals.append(np.full(int(same.sum()), 1.0 / gap))
    coo = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_items, n_items))
    return coo.tocsr()  # duplicate pairs are summed


class ItemKNN:
    """A Scorer (urllm.models.evaluation) over train-split item transitions."""

    def __init__(self, dataset: Dataset, train: list[Example], window: int = 1, recency: float = 0.8,
                 cross_weight: float = 1.0, norm: float = 0.0, history_len: int = 20,
                 transitions: sp.csr_matrix | None = None, counts: np.ndarray | None = None):
        """`transitions` (T for this window) and `counts` (training popularity per item) when
        the caller has them already: tuning builds them once and shares them across points."""
        self.window, self.recency, self.cross_weight, self.norm, self.history_len = window, recency, cross_weight, norm, history_len
        self.item_domain = dataset.item_domain.astype(np.int64)
        self.domain_items = [dataset.items_of(d) for d in (0, 1)]
        if transitions is None:
            transitions = transition_matrix(graph_sequences(train), dataset.n_items, window)
        self.transitions = transitions  # raw weighted pair counts [n_items, n_items]
        out = np.asarray(transitions.sum(axis=1)).ravel()
        scale = np.zeros_like(out)
        scale[out > 0] = out[out > 0] ** -norm
        normalised = (sp.diags(scale) @ transitions).tocsc()
        self.columns = [normalised[:, items].tocsr() for items in self.domain_items]  # per target domain
        if counts is None:
            counts = Popularity(dataset, train).counts.numpy().astype(np.float64)
        self.prior = []
        for items in self.domain_items:
            pop = counts[items]
            self.prior.append(PRIOR * pop / pop.max() if pop.max() > 0 else np.zeros(len(items)))

    def point(self) -> dict:
        return {"window": self.window, "recency": self.recency, "cross_weight": self.cross_weight, "norm": self.norm}

    def query(self, histories: list[np.ndarray], domain: int) -> sp.csr_matrix:
        """[B, n_items]: each line's weight on each of its recent items (repeats add up)."""
        rows, cols, vals = [], [], []
        for row, history in enumerate(histories):
            recent = np.asarray(history, dtype=np.int64)[-self.history_len:][::-1]  # age 0 first
            weight = self.recency ** np.arange(len(recent), dtype=np.float64)
            weight = weight * np.where(self.item_domain[recent] == domain, 1.0, self.cross_weight)
            rows.append(np.full(len(recent), row))
            cols.append(recent)
            vals.append(weight)
        shape = (len(histories), len(self.item_domain))
        if not histories:
            return sp.csr_matrix(shape)
        return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=shape)

    def scores(self, histories: list[np.ndarray], domain: int) -> torch.Tensor:
        """[B, n_items_of_domain] float32 on the CPU, columns in `items_of(domain)` order."""
        raw = (self.query(histories, domain) @ self.columns[domain]).toarray()
        best = raw.max(axis=1, keepdims=True) if raw.size else np.zeros((len(histories), 1))
        raw = np.divide(raw, best, out=np.zeros_like(raw), where=best > 0)  # rows scaled to a best of 1
        return torch.from_numpy((raw + self.prior[domain]).astype(np.float32))


def tune_itemknn(dataset: Dataset, cfg: ItemKNNConfig | None = None) -> tuple[ItemKNN, dict]:
    """Fit every grid point on train, score it on the VALID split only, and keep the best by
    `cfg.select_metric` (ties: the first point in grid order). Returns the chosen model and
    a JSON-ready report of every point."""
    cfg = cfg or ItemKNNConfig()
    cfg.validate()
    start = time.perf_counter()
    train = dataset.splits["train"]
    sequences = graph_sequences(train)
    counts = Popularity(dataset, train).counts.numpy().astype(np.float64)
    shown = dict.fromkeys((cfg.select_metric, "MRR", "HR@10"))  # reported valid metrics, in this order
    grid, best, best_value = [], None, -np.inf
    for window in cfg.windows:
        transitions = transition_matrix(sequences, dataset.n_items, window)
        for recency in cfg.recencies:
            for cross_weight in cfg.cross_weights:
                for norm in cfg.norms:
                    model = ItemKNN(dataset, train, window, recency, cross_weight, norm, cfg.history_len, transitions, counts)
                    overall = evaluate(model, dataset, "valid", cfg.batch_size)["overall"]
                    grid.append(model.point() | {f"valid_{m}": round(float(overall[m]), 6) for m in shown})
                    if overall[cfg.select_metric] > best_value:  # strict: the first of equal points wins
                        best, best_value = model, overall[cfg.select_metric]
    report = {"grid": grid, "chosen": best.point(), "select_metric": cfg.select_metric,
              "history_len": cfg.history_len, "seconds": round(time.perf_counter() - start, 3)}
    return best, report
