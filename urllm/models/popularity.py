"""Popularity per domain: every user gets the domain's most-interacted items of training."""
from __future__ import annotations

import numpy as np
import torch

from urllm.data.dataset import Dataset, Example


class Popularity:
    def __init__(self, dataset: Dataset, train: list[Example]):
        counts = np.zeros(dataset.n_items, dtype=np.float64)
        seen_users: set[int] = set()
        for ex in train:
            if ex.user not in seen_users:  # a user's shared history counts once
                seen_users.add(ex.user)
                np.add.at(counts, ex.history, 1.0)
            counts[ex.target] += 1.0
        self.domain_items = [dataset.items_of(d) for d in (0, 1)]
        self.counts = torch.from_numpy(counts).float()

    def scores(self, histories: list[np.ndarray], domain: int) -> torch.Tensor:
        row = self.counts[self.domain_items[domain]]
        return row.expand(len(histories), -1)
