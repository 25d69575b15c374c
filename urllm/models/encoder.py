"""What the two tri-thread sequence models share: the dual-graph model
(urllm/models/dual_graph.py, SASRec included) and LLM4CDSR (urllm/models/llm4cdsr.py).

Both read a user's interleaved sequence with CAUSAL transformer threads: a mixed thread
over every item and one thread per domain over that domain's items only, in order
(`domain_thread_states`). Both train with next-item cross-entropy over the label's
domain: against all of its items (`full_softmax_loss`) or against negatives shared by a
group of positions (`sampled_softmax_loss`); `label_groups` gives those groups in the
order the models draw their negatives, so seeded runs repeat exactly.

Sequences are right-padded with the pad id (= n_items), the last row of every item table.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn


class CausalEncoder(nn.Module):
    """Position embeddings + pre-norm transformer blocks under a causal mask.

    `cfg`: a model config with dim, n_heads, n_blocks, dropout and max_len
    (DualGraphConfig, LLM4CDSRConfig)."""

    def __init__(self, cfg):
        super().__init__()
        self.pos = nn.Embedding(cfg.max_len, cfg.dim)
        # the item embeddings' scale: nn.Embedding's default N(0, 1) would drown the items in position
        nn.init.normal_(self.pos.weight, std=0.05)
        layer = nn.TransformerEncoderLayer(
            cfg.dim, cfg.n_heads, 4 * cfg.dim, cfg.dropout, batch_first=True, norm_first=True, activation="gelu"
        )
        self.blocks = nn.TransformerEncoder(layer, cfg.n_blocks, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.size(1)
        x = self.drop(x + self.pos.weight[:length])
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=x.device, dtype=x.dtype)
        return self.norm(self.blocks(x, mask=mask, is_causal=True))


def domain_subsequence(seq: torch.Tensor, in_domain: torch.Tensor, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A domain thread's input and where to read it.

    seq [B, L] item ids, in_domain [B, L] bool. Returns sub [B, W]: each row's in-domain
    items moved to the front in their order, pad after (W >= 1); and last [B, L]: for each
    position p, the index in `sub` of the last in-domain item up to p (-1 before the first).
    """
    width = max(1, int(in_domain.sum(1).max()))
    order = torch.sort((~in_domain).to(torch.int8), dim=1, stable=True).indices[:, :width]
    sub = torch.where(torch.gather(in_domain, 1, order), torch.gather(seq, 1, order), pad)
    return sub, in_domain.long().cumsum(1) - 1


def domain_thread_states(encoder: CausalEncoder, table: torch.Tensor, seq: torch.Tensor, in_domain: torch.Tensor,
                         pad: int) -> torch.Tensor:
    """[B, L, d]: at each position p, the domain thread's state at the last in-domain item
    up to p (zero before the first). The thread encodes the row's in-domain items alone
    (rows of `table` [N+1, d]), so it never sees the other domain's items."""
    sub, last = domain_subsequence(seq, in_domain, pad)
    hidden = encoder(table[sub])
    state = torch.gather(hidden, 1, last.clamp(min=0).unsqueeze(-1).expand(-1, -1, hidden.size(-1)))
    return state * (last >= 0).unsqueeze(-1)


def last_states(hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """[B, d]: each row's state [B, L, d] after its last item (position 0 for an empty row)."""
    at_last = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, hidden.size(-1))
    return hidden.gather(1, at_last).squeeze(1)


def label_groups(labels: torch.Tensor, extra: torch.Tensor, item_domain: torch.Tensor
                 ) -> Iterator[tuple[torch.Tensor, int, torch.Tensor]]:
    """(targets [B, L], domain d, hit [B, L]) for each label tensor (labels, then extra) and
    domain (A, then B) holding at least one label: hit marks the positions whose label is
    an item of d. `item_domain` [N+1] (-1 for the pad); -1 in a label tensor: no label."""
    for targets in (labels, extra):
        for d in (0, 1):
            hit = (targets >= 0) & (item_domain[targets.clamp(min=0)] == d)
            if hit.any():
                yield targets, d, hit


def full_softmax_loss(states: torch.Tensor, table: torch.Tensor, candidates: torch.Tensor,
                      target_columns: torch.Tensor, bonus: torch.Tensor | None = None) -> torch.Tensor:
    """Summed cross-entropy of each position's target among all `candidates` (item ids).

    Logits [P, C] = states [P, d] @ table[candidates].T (+ `bonus` [P, C]); target_columns
    [P]: each target's index in `candidates`."""
    logits = states @ table[candidates].T
    if bonus is not None:
        logits = logits + bonus
    return F.cross_entropy(logits, target_columns, reduction="sum")


def sampled_softmax_loss(states: torch.Tensor, table: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor,
                         bonus: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Summed cross-entropy of each position's target against `negatives` [K] (item ids)
    shared by every position; a negative equal to a position's own target is masked out
    for that position.

    Logits: states [P, d] dot table rows, plus `bonus` = (at the targets [P], at the
    negatives [P, K]) when given."""
    positive = (states * table[targets]).sum(-1)
    sampled = states @ table[negatives].T
    if bonus is not None:
        positive, sampled = positive + bonus[0], sampled + bonus[1]
    sampled = sampled.masked_fill(negatives.view(1, -1) == targets.view(-1, 1), float("-inf"))
    logits = torch.cat([positive.unsqueeze(1), sampled], dim=1)
    return F.cross_entropy(logits, torch.zeros(len(targets), dtype=torch.long, device=states.device), reduction="sum")
