"""Graph readout: score items by the weighted cross-domain graph edges leaving the user's
most recent items, a learned one-hop propagation of the user's history over the graph.

    readout(i) = scale * sum_j recency_j * sum over kept neighbours n of s_{p-j}: [n == i] * c(s_{p-j}, n) ** alpha

c(a, b) is how often a and b follow each other in training sequences (the cross-domain
graph's edge weight); each item keeps its `neighbors` strongest edges. scale, recency and
alpha are learned with the rest of the model. While training, a user's own transitions
are subtracted from the counts, so the readout never sees the pair it is asked to predict
(a test user's pairs are not in the graph either).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from urllm.models.graphs import Graph


def top_neighbors(graph: Graph, n_items: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[N+1, k] neighbour ids (pad = n_items) and counts (0 for pad), strongest first."""
    src, dst = graph.edge_index
    weight = graph.weight
    # Heaviest first; ties in weight broken by a seeded random key, never by item id
    # (ids carry no meaning, and on Art-Office neighbouring ids are a known leak).
    tie = torch.rand(len(src), generator=torch.Generator().manual_seed(0))
    order = torch.argsort(tie)
    order = order[torch.argsort(-weight[order], stable=True)]
    order = order[torch.argsort(src[order], stable=True)]
    src, dst, weight = src[order], dst[order], weight[order]
    starts = torch.searchsorted(src, torch.arange(n_items))
    rank = torch.arange(len(src)) - starts[src]
    keep = rank < k
    nbr = torch.full((n_items + 1, k), n_items, dtype=torch.long)
    cnt = torch.zeros(n_items + 1, k)
    nbr[src[keep], rank[keep]] = dst[keep]
    cnt[src[keep], rank[keep]] = weight[keep]
    return nbr, cnt


def window_items(seq: torch.Tensor, window: int, pad: int) -> torch.Tensor:
    """[B, L, window]: the item at p, p-1, ... (pad before the start)."""
    return torch.stack([F.pad(seq, (j, 0), value=pad)[:, : seq.size(1)] for j in range(window)], dim=-1)


def own_pair_counts(recent: torch.Tensor, nbrs: torch.Tensor, pair_x: torch.Tensor, pair_y: torch.Tensor) -> torch.Tensor:
    """How often the user's own sequence holds the pair (recent item, neighbour), either
    direction. recent [P, W], nbrs [P, W, M], pair_x / pair_y [P, Q] (pad entries never match)."""
    a = recent.unsqueeze(-1).unsqueeze(-1)  # [P, W, 1, 1]
    b = nbrs.unsqueeze(-1)  # [P, W, M, 1]
    x, y = pair_x[:, None, None, :], pair_y[:, None, None, :]
    return (((x == a) & (y == b)) | ((y == a) & (x == b))).sum(-1).float()


class GraphReadout(nn.Module):
    def __init__(self, graph: Graph, n_items: int, window: int, neighbors: int):
        super().__init__()
        self.n_items, self.window = n_items, window
        nbr, cnt = top_neighbors(graph, n_items, neighbors)
        self.register_buffer("nbr", nbr, persistent=False)
        self.register_buffer("cnt", cnt, persistent=False)
        self.recency = nn.Parameter(torch.linspace(0.5, -1.5, window))  # softplus: the latest item weighs most
        self.log_alpha = nn.Parameter(torch.zeros(()))
        self.scale = nn.Parameter(torch.ones(()))

    def entries(self, recent: torch.Tensor, own: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Neighbour ids [P, W, M] and their weights for the recent items [P, W]."""
        nbrs, counts = self.nbr[recent], self.cnt[recent]
        if own is not None:
            counts = (counts - own).clamp(min=0)
        alpha = self.log_alpha.exp()
        strength = torch.where(counts > 0, torch.exp(alpha * torch.log(counts.clamp(min=1))), torch.zeros_like(counts))
        weights = self.scale * F.softplus(self.recency).view(1, -1, 1) * strength
        return nbrs, weights

    def own_counts(self, recent, pair_x, pair_y) -> torch.Tensor:
        return own_pair_counts(recent, self.nbr[recent], pair_x, pair_y)

    def over_columns(self, recent, own, column: torch.Tensor, n_columns: int) -> torch.Tensor:
        """[P, n_columns] readout; column[item] is its column, -1 for items not scored."""
        nbrs, weights = self.entries(recent, own)
        col = column[nbrs].flatten(1)
        col = torch.where(col >= 0, col, n_columns)  # unscored items land in a dropped column
        out = torch.zeros(recent.size(0), n_columns + 1, dtype=weights.dtype, device=weights.device)
        return out.scatter_add(1, col, weights.flatten(1))[:, :n_columns]

    def at_items(self, recent, own, items: torch.Tensor) -> torch.Tensor:
        """[P] readout of one item per row."""
        nbrs, weights = self.entries(recent, own)
        return (weights * (nbrs == items.view(-1, 1, 1))).sum((1, 2))


class ReadoutOnlyScorer:
    """The ablation `dual_graph_readout_only`: a trained dual-graph model's graph readout
    alone (its learned recency weights, alpha and scale), without the neural threads, i.e.
    what weighted transition counting over the cross-domain graph gives. Items the readout
    does not reach all score 0; they are ordered by training popularity (`popularity`,
    per item, scaled to at most 1e-6 of a readout unit), so pessimistic ties do not decide
    the ablation. A Scorer (urllm/models/evaluation.py)."""

    TIE_BREAK = 1e-6

    def __init__(self, model, popularity: torch.Tensor):
        from urllm.models.sequences import pad_histories

        if model.readout is None:
            raise ValueError("the dual-graph model has no graph readout (DualGraphConfig.readout is off)")
        self.model, self._pad = model.eval(), pad_histories
        self.prior = self.TIE_BREAK * popularity.float() / max(float(popularity.max()), 1.0)

    def scores(self, histories, domain: int) -> torch.Tensor:
        m = self.model
        seq, lengths = self._pad(histories, m.cfg.max_len, m.n_items)
        device = m.readout.nbr.device
        with torch.no_grad():
            readout = m.readout_scores(seq.to(device), lengths.to(device), domain).cpu()
        return readout + self.prior[m.domain_items(domain).cpu()]
