"""The split invariants every source keeps, checked once for all of them (Dataset.validate
runs this after each load), so that a broken file or a loader bug is refused with the
line's origin instead of silently leaking test users into training:

- every line has a history (at least one item before the target);
- a user is in one split only: train, valid and test users are disjoint (a test user is
  never seen in training);
- a user's lines cut one sequence: of any two, the shorter history is the start of the
  longer one, and when it is strictly shorter its target is the longer history's next
  item. The URLLM release gives both lines of a user the same history and different
  targets (on Art-Office every user has two such lines; for 415 of 9,577 users both
  targets are Art items); the leave-one-out split of the other sources gives one line
  per domain, each cut at that domain's last item;
- no line appears twice.

A line's origin is `Example.origin` (file:line for the URLLM release, source file and
user for generated splits), else its split and position.
"""
from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np

from urllm.data.errors import DataError

if TYPE_CHECKING:
    from urllm.data.dataset import Dataset, Example


def check_splits(ds: Dataset) -> None:
    """Raise DataError naming the first line that breaks an invariant above."""
    home: dict[int, tuple[str, str]] = {}  # user -> (split, origin of their first line)
    for split, examples in ds.splits.items():
        lines_of: dict[int, list[tuple[str, Example]]] = defaultdict(list)
        for i, ex in enumerate(examples):
            origin = ex.origin or f"{ds.spec}: {split} line {i + 1}"
            if not 0 <= ex.user < len(ds.users):
                raise DataError(f"{origin}: user {ex.user} is not one of the dataset's {len(ds.users)} users")
            name = ds.users[ex.user].raw_id
            if len(ex.history) == 0:
                raise DataError(f"{origin}: user {name!r} has an empty history: expected at least one item before the target")
            first_split, first_origin = home.setdefault(ex.user, (split, origin))
            if first_split != split:
                raise DataError(
                    f"{origin}: user {name!r} is in {split} and also in {first_split} ({first_origin});"
                    " expected train, valid and test to share no user (a test user is never seen in training)"
                )
            lines_of[ex.user].append((origin, ex))
        for user, lines in lines_of.items():
            _check_user_lines(ds.users[user].raw_id, lines)


def _check_user_lines(name: str, lines: list[tuple[str, Example]]) -> None:
    """The lines of one user in one split: consistent with their longest line, none twice."""
    base_origin, base = max(lines, key=lambda line: len(line[1].history))  # the first longest
    seen: dict[tuple[int, int], str] = {}
    for origin, ex in lines:
        n = len(ex.history)
        start = base.history[:n]
        if not np.array_equal(ex.history, start):
            k = int(np.flatnonzero(ex.history != start)[0])
            raise DataError(
                f"{origin}: history of user {name!r} differs from their line {base_origin} at position {k}"
                f" (item {int(ex.history[k])} here, {int(start[k])} there); expected a user's lines to agree"
                " on their history (the same, or one the start of the other)"
            )
        if n < len(base.history) and ex.target != base.history[n]:
            raise DataError(
                f"{origin}: target {ex.target} of user {name!r} is not item {int(base.history[n])}, which follows"
                f" the same history in their line {base_origin}; expected a user's lines to cut one sequence"
            )
        key = (n, int(ex.target))  # histories of equal length are equal here
        if key in seen:
            raise DataError(f"{origin}: duplicate of {seen[key]} (user {name!r}, target {ex.target}); expected each line once")
        seen[key] = origin
