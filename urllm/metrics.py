"""Full-ranking metrics (DESIGN 2.6): the target is ranked against ALL items of its domain.

Ties are counted pessimistically: an item scoring exactly the target's score ranks above
it, so a model that scores everything equally gets the worst rank, not a lucky one.
"""
from __future__ import annotations

import numpy as np
import torch

CUTOFFS_HR = (1, 5, 10, 20)
CUTOFFS_NDCG = (5, 10, 20)
METRIC_NAMES = [f"HR@{k}" for k in CUTOFFS_HR] + [f"NDCG@{k}" for k in CUTOFFS_NDCG] + ["MRR"]


def rank_of_target(scores: torch.Tensor, target_col: torch.Tensor) -> torch.Tensor:
    """1-based pessimistic rank of each row's target column among all columns.

    scores: [B, n_candidates]; target_col: [B] column index of the target.
    """
    target = scores.gather(1, target_col.view(-1, 1))
    better_or_tied = (scores >= target).sum(dim=1)  # counts the target itself once
    return better_or_tied.to(torch.int64)


def metrics_from_ranks(ranks: np.ndarray) -> dict[str, float]:
    ranks = np.asarray(ranks, dtype=np.float64)
    if len(ranks) == 0:
        return {name: 0.0 for name in METRIC_NAMES}
    out = {f"HR@{k}": float((ranks <= k).mean()) for k in CUTOFFS_HR}
    gain = 1.0 / np.log2(ranks + 1.0)
    out |= {f"NDCG@{k}": float(np.where(ranks <= k, gain, 0.0).mean()) for k in CUTOFFS_NDCG}
    out["MRR"] = float((1.0 / ranks).mean())
    return out


def summarize(ranks: np.ndarray, domains: np.ndarray, domain_names: tuple[str, str]) -> dict:
    """{"overall": {...}, <domain name>: {...}, "n_test_lines": N} with per-part line counts."""
    ranks, domains = np.asarray(ranks), np.asarray(domains)
    out: dict = {"overall": metrics_from_ranks(ranks) | {"n": int(len(ranks))}}
    for d, name in enumerate(domain_names):
        part = ranks[domains == d]
        out[name] = metrics_from_ranks(part) | {"n": int(len(part))}
    out["n_test_lines"] = int(len(ranks))
    return out
