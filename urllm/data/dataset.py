"""The one in-memory dataset type every stage of URLLM Studio reads.

Items have dense global ids 0..N-1, a title, a domain (0 = A, 1 = B) and optional
attribute words. Users have a time-ordered interleaved sequence of item ids. Each split
(train / valid / test) is a list of leave-one-out `Example`s: a history and the held-out
next item of one target domain. Item ids carry no meaning beyond identity: nothing may
use id order or id arithmetic (see the Art-Office README).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from urllm.data.errors import DataError
from urllm.data.integrity import check_splits

SPLITS = ("train", "valid", "test")


@dataclass
class Example:
    """One leave-one-out line: given `history` (time order), predict `target` in `domain`."""

    user: int  # index into Dataset.users
    domain: int  # target domain: 0 (A) or 1 (B)
    history: np.ndarray  # int64 item ids, oldest first
    target: int  # held-out item id, an item of `domain`
    # Where the line came from, for error messages: "train.txt:12", or the source file
    # and the user for a split built here. Not part of a line's identity.
    origin: str = field(default="", compare=False, repr=False)


@dataclass
class User:
    raw_id: str  # id in the source files (reviewerID, MovieLens user id, ...)
    items: np.ndarray  # int64 item ids, the full known interleaved sequence, oldest first
    times: np.ndarray  # int64 timestamps (positions where the source has none)


@dataclass
class Dataset:
    spec: str  # the spec string it was loaded from
    domains: tuple[str, str]  # names of domain A and domain B
    item_titles: list[str]
    item_domain: np.ndarray  # int8, 0 or 1 per item
    item_attributes: list[tuple[str, ...]]  # attribute words per item (may be empty)
    item_raw_ids: list[str]  # id in the source files (asin, MovieLens title, ...)
    users: list[User]
    splits: dict[str, list[Example]] = field(default_factory=dict)

    @property
    def n_items(self) -> int:
        return len(self.item_titles)

    def items_of(self, domain: int) -> np.ndarray:
        """Global ids of the items of one domain."""
        return np.flatnonzero(self.item_domain == domain)

    def validate(self) -> None:
        """Check the invariants the rest of the code relies on; raise DataError if broken."""
        n = self.n_items
        if not (len(self.item_domain) == len(self.item_attributes) == len(self.item_raw_ids) == n):
            raise DataError(f"{self.spec}: item arrays have different lengths")
        if n == 0:
            raise DataError(f"{self.spec}: no items")
        if not set(np.unique(self.item_domain)) <= {0, 1}:
            raise DataError(f"{self.spec}: item domains must be 0 or 1")
        for d in (0, 1):
            if not (self.item_domain == d).any():
                raise DataError(f"{self.spec}: domain {self.domains[d]!r} has no items")
        for i, title in enumerate(self.item_titles):
            if not title.strip():
                raise DataError(f"{self.spec}: item {self.item_raw_ids[i]!r} has an empty title")
        first_with_id: dict[str, int] = {}
        for i, u in enumerate(self.users):
            if first_with_id.setdefault(u.raw_id, i) != i:
                raise DataError(
                    f"{self.spec}: users {first_with_id[u.raw_id]} and {i} have the same id {u.raw_id!r}: expected one user per id"
                )
            if len(u.items) != len(u.times):
                raise DataError(f"{self.spec}: user {u.raw_id!r} items and times differ in length")
            if len(u.items) and (u.items.min() < 0 or u.items.max() >= n):
                raise DataError(f"{self.spec}: user {u.raw_id!r} has an unknown item id")
            if np.any(np.diff(u.times) < 0):
                raise DataError(f"{self.spec}: user {u.raw_id!r} sequence is not time-ordered")
        check_splits(self)  # users disjoint across splits, a user's lines consistent, no line twice
        for split in SPLITS:
            for ex in self.splits.get(split, []):
                if not 0 <= ex.target < n or self.item_domain[ex.target] != ex.domain:
                    raise DataError(
                        f"{ex.origin or self.spec}: {split} example of user {self.users[ex.user].raw_id!r}"
                        f" has a target outside its domain"
                    )

    def split_users(self, split: str) -> set[int]:
        return {ex.user for ex in self.splits.get(split, [])}

    def describe(self) -> dict:
        """Figures for `python -m urllm.data describe` and the run manifest."""
        lengths = np.array([len(u.items) for u in self.users], dtype=np.int64)
        per_domain = np.array(
            [np.bincount(self.item_domain[u.items], minlength=2) for u in self.users]
        ).reshape(-1, 2)
        pct = [10, 25, 50, 75, 90, 99]
        seq = {f"p{p}": round(float(np.percentile(lengths, p)), 1) for p in pct} if len(lengths) else {}
        if len(lengths):
            seq.update(mean=round(float(lengths.mean()), 2), min=int(lengths.min()), max=int(lengths.max()))
        a, b = self.domains
        return {
            "spec": self.spec,
            "domains": [a, b],
            "n_users": len(self.users),
            "n_items": {a: int((self.item_domain == 0).sum()), b: int((self.item_domain == 1).sum())},
            "n_interactions": int(lengths.sum()),
            "n_interactions_per_domain": {a: int(per_domain[:, 0].sum()), b: int(per_domain[:, 1].sum())},
            "users_in_both_domains": int(((per_domain[:, 0] > 0) & (per_domain[:, 1] > 0)).sum()),
            "sequence_length": seq,
            "splits": {s: len(self.splits.get(s, [])) for s in SPLITS},
            "split_users": {s: len(self.split_users(s)) for s in SPLITS},
            "targets_per_domain": {
                s: {
                    a: sum(ex.domain == 0 for ex in self.splits.get(s, [])),
                    b: sum(ex.domain == 1 for ex in self.splits.get(s, [])),
                }
                for s in SPLITS
            },
        }
