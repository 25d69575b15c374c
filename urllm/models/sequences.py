"""Turning a Dataset's examples into padded tensors for the sequence models.

Rows are right-padded with the pad id (= n_items) and truncated to the most recent
`max_len` items. With a causal encoder, right padding is safe: a real position never
attends to the pads after it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from urllm.data.dataset import Dataset, Example


def pad_histories(histories: list[np.ndarray], max_len: int, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, L] item ids (most recent `max_len` kept) and [B] lengths (an empty history has length 0)."""
    kept = [h[-max_len:] if max_len > 0 else h[:0] for h in histories]
    width = max(1, max((len(h) for h in kept), default=1))
    out = np.full((len(kept), width), pad, dtype=np.int64)
    for row, h in enumerate(kept):
        out[row, : len(h)] = h
    return torch.from_numpy(out), torch.tensor([len(h) for h in kept], dtype=torch.long)


@dataclass
class TrainingSequences:
    """One row per training user: inputs[p] is followed by labels[p] (and, where a second
    example of the user is cut at p, by extra[p] too). -1 marks "no label"."""

    inputs: torch.Tensor  # [U, L]
    labels: torch.Tensor  # [U, L]
    extra: torch.Tensor  # [U, L]
    users: torch.Tensor  # [U] each row's index into Dataset.users


def merged_user_sequences(examples: list[Example]) -> list[tuple[int, np.ndarray, list[tuple[int, int]]]]:
    """Per user: the user, the longest example's history + target, and (position, target) of every
    shorter example of that user (its history is a prefix of the longest one in every
    source: URLLM lines share the history, leave-one-out lines are prefixes)."""
    by_user: dict[int, list[Example]] = {}
    for ex in examples:
        by_user.setdefault(ex.user, []).append(ex)
    out = []
    for user, user_examples in by_user.items():
        user_examples.sort(key=lambda e: len(e.history), reverse=True)
        longest = user_examples[0]
        extras = [(len(ex.history) - 1, int(ex.target)) for ex in user_examples[1:]]
        out.append((user, np.append(longest.history, longest.target), extras))
    return out


def graph_sequences(examples: list[Example]) -> list[np.ndarray]:
    """The sequences the item graphs are built from: each training user once (the same
    transitions the training rows hold), plus a 2-item sequence per extra target."""
    seqs = []
    for _, seq, extras in merged_user_sequences(examples):
        seqs.append(seq)
        seqs += [np.array([seq[p], t]) for p, t in extras if p >= 0 and seq[p + 1] != t]
    return seqs


def training_sequences(dataset: Dataset, examples: list[Example], max_len: int) -> TrainingSequences:
    """Merge each user's examples into one row of next-item labels.

    The longest example (history + target) gives the row; every shorter example of the
    same user is a prefix of it in every source (URLLM lines share the history), so its
    target becomes an extra label at the position where its history ends.
    """
    pad = dataset.n_items
    rows_in, rows_lab, rows_ext, users = [], [], [], []
    for user, seq, extras in merged_user_sequences(examples):
        if len(seq) < 2:
            continue
        inputs, labels = seq[:-1], seq[1:].copy()
        extra = np.full(len(inputs), -1, dtype=np.int64)
        for p, target in extras:
            if p >= 0 and labels[p] != target:
                extra[p] = target
        start = max(0, len(inputs) - max_len)
        rows_in.append(inputs[start:])
        rows_lab.append(labels[start:])
        rows_ext.append(extra[start:])
        users.append(user)
    width = max(len(r) for r in rows_in)

    def stack(rows, fill):
        out = np.full((len(rows), width), fill, dtype=np.int64)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return torch.from_numpy(out)

    return TrainingSequences(stack(rows_in, pad), stack(rows_lab, -1), stack(rows_ext, -1),
                             torch.tensor(users, dtype=torch.long))
