"""Leave-one-out examples and user-disjoint splits, shared by the sources that build their
own split (movielens, amazon, synthetic). The URLLM release keeps its own split.

Protocol, the same as the URLLM release: users are partitioned into train / valid / test
(a test user is never seen in training); each user gives one example per target domain
whose target is the user's LAST item of that domain and whose history is every item
before it in time (both domains interleaved).
"""
from __future__ import annotations

import numpy as np

from urllm.data.checks import check_split_fractions
from urllm.data.dataset import SPLITS, Example, User


def users_from_sorted(user_ids: np.ndarray, items: np.ndarray, times: np.ndarray) -> list[User]:
    """One User per run of equal ids in arrays already sorted by (user, time)."""
    if len(user_ids) == 0:
        return []
    starts = np.flatnonzero(np.r_[True, user_ids[1:] != user_ids[:-1]])
    ends = np.r_[starts[1:], len(user_ids)]
    return [User(str(user_ids[s]), items[s:e], times[s:e]) for s, e in zip(starts, ends)]


def keep_active_users(users: list[User], item_domain: np.ndarray, min_per_domain: int) -> list[User]:
    """Users with at least `min_per_domain` items in each domain (targets need one each,
    and a history needs at least one item before the first target)."""
    kept = []
    for u in users:
        counts = np.bincount(item_domain[u.items], minlength=2)
        if counts.min() >= min_per_domain:
            kept.append(u)
    return kept


def leave_one_out(user_index: int, user: User, item_domain: np.ndarray, source: str = "") -> list[Example]:
    """One example per domain: the last item of that domain, with everything before it.
    `source` (the file the user's data came from) goes into each example's origin."""
    examples = []
    origin = f"{source}: user {user.raw_id!r}" if source else f"user {user.raw_id!r}"
    domains = item_domain[user.items]
    for d in (0, 1):
        positions = np.flatnonzero(domains == d)
        if len(positions) == 0 or positions[-1] == 0:
            continue  # no target in this domain, or nothing before it
        t = int(positions[-1])
        examples.append(Example(user_index, d, user.items[:t], int(user.items[t]), origin))
    return examples


def user_disjoint_splits(
    users: list[User], item_domain: np.ndarray, valid_frac: float, test_frac: float, seed: int, source: str = ""
) -> dict[str, list[Example]]:
    """Partition users at random (seeded) and build their leave-one-out examples."""
    check_split_fractions(valid_frac, test_frac)
    n = len(users)
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_valid = round(n * test_frac), round(n * valid_frac)
    split_of = np.empty(n, dtype=np.int8)
    split_of[order[:n_test]] = 2
    split_of[order[n_test : n_test + n_valid]] = 1
    split_of[order[n_test + n_valid :]] = 0
    splits: dict[str, list[Example]] = {s: [] for s in SPLITS}
    for i, u in enumerate(users):
        splits[SPLITS[split_of[i]]].extend(leave_one_out(i, u, item_domain, source))
    return splits
