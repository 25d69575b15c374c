"""Full-ranking metrics (DESIGN 2.6): the target is ranked against ALL items of its domain.

Every target rank comes from one of two helpers: `rank_of_target` from score rows,
`rank_in_list` from a ranked list of item ids. No torch import: the app uses this module
too (rank_of_target works on the torch tensors it is given).

Ties are counted pessimistically: an item scoring exactly the target's score ranks above
it, so a model that scores everything equally gets the worst rank, not a lucky one.
"""
from __future__ import annotations

import numpy as np

from urllm.stats import METRIC_NAMES, line_values


def rank_of_target(scores, target_col):
    """1-based pessimistic rank of each row's target column among all columns.

    scores: torch [B, n_candidates]; target_col: torch [B] column index of the target.
    """
    target = scores.gather(1, target_col.view(-1, 1))
    better_or_tied = (scores >= target).sum(dim=1)  # counts the target itself once
    return better_or_tied.long()


def rank_in_list(ranking, target: int) -> float:
    """1-based position of `target` in a ranked list of item ids, inf when absent (a list
    method's rank without completion; urllm.models.evaluation.CompletedRanks completes it)."""
    ranking, target = [int(i) for i in ranking], int(target)
    return float(ranking.index(target) + 1) if target in ranking else float("inf")


def metrics_from_ranks(ranks: np.ndarray) -> dict[str, float]:
    ranks = np.asarray(ranks, dtype=np.float64)
    if len(ranks) == 0:
        return {name: 0.0 for name in METRIC_NAMES}
    return {name: float(v.mean()) for name, v in line_values(ranks).items()}


def summarize(ranks: np.ndarray, domains: np.ndarray, domain_names: tuple[str, str]) -> dict:
    """{"overall": {...}, <domain name>: {...}, "n_test_lines": N} with per-part line counts."""
    ranks, domains = np.asarray(ranks), np.asarray(domains)
    out: dict = {"overall": metrics_from_ranks(ranks) | {"n": int(len(ranks))}}
    for d, name in enumerate(domain_names):
        part = ranks[domains == d]
        out[name] = metrics_from_ranks(part) | {"n": int(len(part))}
    out["n_test_lines"] = int(len(ranks))
    return out
