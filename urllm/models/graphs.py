"""The item graphs of the dual-graph model, as torch-geometric edge_index tensors.

- cross-domain graph: consecutive items of the merged (interleaved) sequence;
- domain graphs: consecutive items of the same domain (the other domain's items skipped);
- item-attribute graph: bipartite, item i -- attribute word w (node n_items + w).

Built from training sequences only; edges are undirected (both directions stored), one
per item pair, weighted by how often the pair occurs (a pair seen in many users' sequences
is strong evidence, and on Art-Office the weights carry most of the graph's signal);
self-loops (an item repeated in a row) are dropped. Attribute links have weight 1.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Graph:
    edge_index: torch.Tensor  # [2, E], both directions of every undirected edge
    weight: torch.Tensor  # [E] float: occurrences of the pair


@dataclass
class ItemGraphs:
    cross: Graph  # over items
    domain: tuple[Graph, Graph]  # over items, for domain A and B
    attribute: Graph  # over items + words (word w is node n_items + w)
    words: list[str]  # attribute vocabulary


def _undirected(pairs: np.ndarray) -> Graph:
    """Unique undirected edges of an [M, 2] array of pairs, weighted by occurrences."""
    pairs = pairs[pairs[:, 0] != pairs[:, 1]] if len(pairs) else pairs.reshape(0, 2)
    both = np.concatenate([pairs, pairs[:, ::-1]])
    edges, counts = np.unique(both, axis=0, return_counts=True)
    return Graph(torch.from_numpy(edges.T.copy()).long(), torch.from_numpy(counts).float())


def transition_pairs(sequences: list[np.ndarray]) -> np.ndarray:
    parts = [np.stack([s[:-1], s[1:]], axis=1) for s in sequences if len(s) > 1]
    return np.concatenate(parts) if parts else np.empty((0, 2), dtype=np.int64)


def attribute_vocabulary(attributes: list[tuple[str, ...]], min_items: int, max_share: float) -> list[str]:
    """Words on at least `min_items` items and at most `max_share` of all items (too
    common a word, like a category root, links everything and says nothing)."""
    counts = Counter(w for attrs in attributes for w in set(attrs))
    limit = max_share * len(attributes)
    return sorted(w for w, c in counts.items() if min_items <= c <= limit)


def build_graphs(
    sequences: list[np.ndarray],
    item_domain: np.ndarray,
    attributes: list[tuple[str, ...]],
    min_word_items: int = 2,
    max_word_share: float = 0.2,
) -> ItemGraphs:
    n_items = len(item_domain)
    cross = _undirected(transition_pairs(sequences))
    domain = tuple(
        _undirected(transition_pairs([s[item_domain[s] == d] for s in sequences])) for d in (0, 1)
    )
    words = attribute_vocabulary(attributes, min_word_items, max_word_share)
    index = {w: i for i, w in enumerate(words)}
    links = [(i, n_items + index[w]) for i, attrs in enumerate(attributes) for w in set(attrs) if w in index]
    attribute = _undirected(np.array(links, dtype=np.int64).reshape(-1, 2))
    attribute.weight = torch.ones_like(attribute.weight)
    return ItemGraphs(cross, domain, attribute, words)
