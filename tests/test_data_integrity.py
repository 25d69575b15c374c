"""The split invariants every source is checked against (urllm/data/integrity.py): no user
in two splits, a user's lines cut one sequence, no line twice, no empty history. The URLLM
release is corrupted on disk (the message names file:line); the generated splits of
synthetic, movielens and amazon are corrupted in memory (the message names the source
file and the user)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
from data_fixtures import amazon_spec, refused_by, set_line, urllm_line, write_amazon, write_movielens

from urllm.data import DataError, Example, load_dataset


def add_line(root, split: str, user: int, history: list[int], target: int) -> None:
    with open(root / f"{split}.txt", "a", encoding="utf-8") as f:
        f.write(urllm_line(user, history, target) + "\n")


def refused(spec: str, *parts: str) -> str:
    return refused_by(load_dataset, spec, *parts)


# ---------------------------------------------------------------- users disjoint across splits
# The fixture (data_fixtures.URLLM_LINES): train users 0 and 1, valid user 2, test user 3,
# two lines each (train.txt lines 1-4, valid.txt 1-2, test.txt 1-2).

DISJOINT = "expected train, valid and test to share no user"


def test_test_user_also_in_train(urllm_release):
    add_line(urllm_release, "train", 3, [3, 7, 0], 6)  # the test user's own line, now train.txt:5
    refused(f"urllm:{urllm_release}", "test.txt:1", "'AUSER3'", "is in test and also in train (", "train.txt:5", DISJOINT)


def test_test_user_in_train_with_another_history(urllm_release):
    add_line(urllm_release, "train", 3, [2, 5], 1)  # not a copy of a test line: the user is still seen
    refused(f"urllm:{urllm_release}", "test.txt:1", "'AUSER3'", "train.txt:5", "a test user is never seen in training")


def test_valid_and_test_overlap(urllm_release):
    add_line(urllm_release, "valid", 3, [3, 7, 0], 1)
    refused(f"urllm:{urllm_release}", "test.txt:1", "'AUSER3'", "in test and also in valid (", "valid.txt:3", DISJOINT)


def test_train_user_in_valid(urllm_release):
    set_line(urllm_release / "valid.txt", 2, urllm_line(0, [0, 4, 1], 5))
    refused(f"urllm:{urllm_release}", "valid.txt:2", "'AUSER0'", "in valid and also in train (", "train.txt:1")


# ---------------------------------------------------------------- a user's lines agree


def test_lines_with_different_histories(urllm_release):
    set_line(urllm_release / "train.txt", 2, urllm_line(0, [0, 5, 1], 2))  # item 5 where line 1 has 4
    refused(f"urllm:{urllm_release}", "train.txt:2", "'AUSER0'", "differs from their line", "train.txt:1",
            "position 1", "item 5 here, 4 there", "agree on their history")


def test_longer_line_later_is_the_reference(urllm_release):
    set_line(urllm_release / "test.txt", 2, urllm_line(3, [3, 6, 0, 1], 5))  # longer, and disagrees at 1
    refused(f"urllm:{urllm_release}", "test.txt:1", "differs from their line", "test.txt:2", "item 7 here, 6 there")


def test_shorter_history_whose_target_is_not_the_next_item(urllm_release):
    set_line(urllm_release / "train.txt", 2, urllm_line(0, [0, 4], 5))  # line 1 goes on with item 1, not 5
    refused(f"urllm:{urllm_release}", "train.txt:2", "target 5 of user 'AUSER0' is not item 1", "train.txt:1",
            "cut one sequence")


def test_shorter_consistent_cut_is_accepted(urllm_release):
    """A leave-one-out pair in the release format (one line cut earlier) is one sequence."""
    set_line(urllm_release / "train.txt", 2, urllm_line(0, [0, 4], 1))
    ds = load_dataset(f"urllm:{urllm_release}")
    u0 = next(u for u in ds.users if u.raw_id == "AUSER0")
    assert u0.items.tolist() == [0, 4, 1, 5]  # the longest history, then its target
    assert [ex.target for ex in ds.splits["train"] if ex.user == ds.users.index(u0)] == [5, 1]


def test_empty_history(urllm_release):
    set_line(urllm_release / "valid.txt", 1, "2\t0\t0|0|0")
    refused(f"urllm:{urllm_release}", "valid.txt:1", "'AUSER2'", "empty history", "at least one item")


# ---------------------------------------------------------------- no line twice


def test_duplicate_line(urllm_release):
    add_line(urllm_release, "train", 0, [0, 4, 1], 5)  # train.txt:5 repeats train.txt:1
    refused(f"urllm:{urllm_release}", "train.txt:5", "duplicate of", "train.txt:1", "'AUSER0'", "target 5",
            "expected each line once")


def test_duplicate_line_in_test(urllm_release):
    set_line(urllm_release / "test.txt", 2, urllm_line(3, [3, 7, 0], 6))
    refused(f"urllm:{urllm_release}", "test.txt:2", "duplicate of", "test.txt:1", "target 6")


def test_same_target_after_another_history_is_not_a_duplicate_but_refused(urllm_release):
    set_line(urllm_release / "train.txt", 2, urllm_line(0, [0, 4, 2], 5))  # same target, other history
    refused(f"urllm:{urllm_release}", "train.txt:2", "differs from their line", "position 2")


# ---------------------------------------------------------------- users.txt


def test_users_file_repeats_a_reviewer(urllm_release):
    set_line(urllm_release / "users.txt", 3, "AUSER0\t2")
    refused(f"urllm:{urllm_release}", "users.txt:3", "'AUSER0'", "listed twice", "line 1")


def test_users_file_repeats_an_index(urllm_release):
    set_line(urllm_release / "users.txt", 4, "AUSER3\t1")
    refused(f"urllm:{urllm_release}", "users.txt:4", "user index 1 listed twice")


def test_split_user_missing_from_users_file(urllm_release):
    set_line(urllm_release / "users.txt", 4, "AUSER3\t7")
    refused(f"urllm:{urllm_release}", "test.txt:1", "user index 3 is not in users.txt")


# ---------------------------------------------------------------- generated splits: same check


def _break(ds, how: str):
    """A copy of `ds` with one invariant broken, as a loader bug could."""
    ds = copy.deepcopy(ds)
    train, test = ds.splits["train"], ds.splits["test"]
    if how == "test user in train":
        train.append(test[0])
    elif how == "duplicate":
        train.append(train[0])
    elif how == "other history":
        ex = train[0]
        history = ex.history.copy()
        history[0] = next(i for i in range(ds.n_items) if i != history[0])
        train.append(Example(ex.user, 1 - ex.domain, history, int(ds.items_of(1 - ex.domain)[0]), ex.origin))
    return ds


GENERATED_MESSAGES = {
    "test user in train": "is in test and also in train",
    "duplicate": "duplicate of",
    "other history": "differs from their line",
}


@pytest.mark.parametrize("how", list(GENERATED_MESSAGES))
def test_synthetic_split_checked(how):
    ds = load_dataset("synthetic?n_users=40")
    bad = _break(ds, how)
    with pytest.raises(DataError) as info:
        bad.validate()
    message = str(info.value)
    assert GENERATED_MESSAGES[how] in message
    assert message.startswith("synthetic: user 'u")  # the source and the user


@pytest.mark.parametrize("how", list(GENERATED_MESSAGES))
def test_movielens_split_checked(tmp_path, how):
    root = write_movielens(tmp_path / "ml")
    ds = load_dataset(f"movielens?root={root}&min_per_domain=1&valid_frac=0&test_frac=0.5")
    assert ds.splits["test"] and ds.splits["train"]
    with pytest.raises(DataError) as info:
        _break(ds, how).validate()
    message = str(info.value)
    assert GENERATED_MESSAGES[how] in message
    assert f"{root / 'ml-1m.inter'}: user 'u" in message


@pytest.mark.parametrize("how", list(GENERATED_MESSAGES))
def test_amazon_split_checked(tmp_path, how):
    ds = load_dataset(amazon_spec(write_amazon(tmp_path / "amazon")))
    with pytest.raises(DataError) as info:
        _break(ds, how).validate()
    message = str(info.value)
    assert GENERATED_MESSAGES[how] in message
    assert "Arts_Crafts_and_Sewing.json + Office_Products.json: user 'U" in message


@pytest.mark.parametrize("spec", ["synthetic?n_users=300", "synthetic?n_users=50&valid_frac=0&test_frac=0.5"])
def test_generated_splits_pass(spec):
    """What the generators produce passes the check: one line per domain, cut at its last item."""
    ds = load_dataset(spec)
    for split in ds.splits.values():
        for ex in split:
            assert ex.origin == f"synthetic: user {ds.users[ex.user].raw_id!r}"
    lines = [ex for split in ds.splits.values() for ex in split]
    assert len({(ex.user, ex.domain) for ex in lines}) == len(lines)
    assert all(np.array_equal(ex.history, ds.users[ex.user].items[: len(ex.history)]) for ex in lines)
