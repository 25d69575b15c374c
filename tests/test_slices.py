"""urllm/app/slices.py on hand-built lines: the bins' edges, history lengths, switch shares,
target popularity (training users only) and the out-of-domain flag computed by hand, and
the filters agreeing with the slices. No training run: a data.json written here."""
import json
import math

import numpy as np
import pandas as pd
import pytest

from urllm.app.reader import RunData
from urllm.app.slices import (
    HISTORY_BINS,
    HISTORY_EDGES,
    POPULARITY_BINS,
    POPULARITY_EDGES,
    SLICES,
    SWITCH_BINS,
    SWITCH_EDGES,
    binned,
    filter_lines,
    slice_columns,
    slice_rows,
    slice_values,
    switch_share,
    target_counts,
    values,
)

A, B = 0, 1
DOMAIN = [A, A, A, A, B, B, B, B]  # items 0-3 in domain a, 4-7 in domain b
USERS = {  # user -> their whole sequence
    0: [0, 1, 4, 0, 5],  # train
    1: [0, 4, 4, 2],  # train
    2: [1, 4, 0, 5, 2],  # test: two lines
    3: [0, 0, 0, 0, 0, 0, 4, 4, 3],  # test
    4: [3] * 12,  # train: item 3 is popular
    5: [4, 6],  # test
    6: [0, 0, 4, 4] * 3 + [7],  # test
    7: [6] * 11,  # valid: item 6 is popular outside training only
}
TEST = [  # user, target domain, target, history
    [2, B, 5, [1, 4, 0]],
    [2, A, 2, [1, 4, 0, 5]],
    [3, A, 3, USERS[3][:-1]],
    [5, B, 6, [4]],
    [6, B, 7, USERS[6][:-1]],
]
# by hand, line by line
HISTORY = ["1-5", "1-5", "6-10", "1-5", "11-20"]
SHARES = [2 / 2, 3 / 3, 1 / 7, 0.0, 5 / 11]  # pairs that change domain / pairs
SWITCHES = ["0.75-1", "0.75-1", "0-0.25", "0", "0.25-0.5"]
COUNTS = [1, 1, 12, 0, 0]  # target 5: user 0; target 2: user 1; target 3: user 4 twelve times; 6 and 7: never in train
POPULARITY = ["1-9", "1-9", "10-99", "0", "0"]
COLD = ["yes", "yes", "no", "yes", "no"]  # target-domain items in the history: 1, 2, 6, 1, 6


@pytest.fixture
def run(tmp_path) -> RunData:
    data = {
        "domains": ["a", "b"],
        "items": {"title": [f"item {i}" for i in range(8)], "domain": DOMAIN},
        "users": [{"id": f"u{u}", "items": items} for u, items in USERS.items()],
        "lines": {"train": [[0, B, 5, [0, 1, 4, 0]], [1, A, 2, [0, 4, 4]], [4, A, 3, [3] * 11]],
                  "valid": [[7, B, 6, [6] * 10]], "test": TEST},
    }
    (tmp_path / "hand").mkdir()
    (tmp_path / "hand" / "data.json").write_text(json.dumps(data))
    return RunData(tmp_path / "hand", {"config": {}, "stages": [{"name": "data", "key": "", "seconds": 0.0, "files": []}]})


def test_bins_hold_their_upper_edge():
    assert list(binned([1, 5, 6, 10, 11, 20, 21, 50, 51, 100, 101, 200, 201, 900], HISTORY_EDGES, HISTORY_BINS)) == [
        "1-5", "1-5", "6-10", "6-10", "11-20", "11-20", "21-50", "21-50", "51-100", "51-100", "101-200", "101-200",
        ">200", ">200"]
    assert list(binned([0, 1e-9, 0.25, 0.2500001, 0.5, 0.75, 0.76, 1.0], SWITCH_EDGES, SWITCH_BINS)) == [
        "0", "0-0.25", "0-0.25", "0.25-0.5", "0.25-0.5", "0.5-0.75", "0.75-1", "0.75-1"]
    assert list(binned([0, 1, 9, 10, 99, 100, 999, 1000], POPULARITY_EDGES, POPULARITY_BINS)) == [
        "0", "1-9", "1-9", "10-99", "10-99", "100-999", "100-999", ">999"]


def test_switch_share_counts_consecutive_pairs_that_change_domain():
    assert switch_share([A]) == 0.0 and switch_share([]) == 0.0
    assert switch_share([A, A, A]) == 0.0
    assert switch_share([A, B, A, B]) == 1.0
    assert switch_share([A, A, B, B, A]) == pytest.approx(2 / 4)


def test_target_popularity_counts_training_users_only(run):
    counts = target_counts(run)
    assert counts.tolist() == [3, 1, 1, 12, 3, 1, 0, 0]  # item 6: a valid user's only; test users never count


def test_slice_columns_by_hand(run):
    table = slice_columns(run, run.line_table())
    assert table["line"].tolist() == list(range(len(TEST)))
    assert table["history slice"].tolist() == HISTORY
    assert table["switch_share"].tolist() == pytest.approx([round(s, 4) for s in SHARES])
    assert table["switches slice"].tolist() == SWITCHES
    assert table["target_count"].tolist() == COUNTS
    assert table["popularity slice"].tolist() == POPULARITY
    assert table["cold_start slice"].tolist() == COLD
    assert table["domain slice"].tolist() == ["b", "a", "a", "b", "b"]
    assert table["ood slice"].tolist() == ["unknown"] * 5  # no generations.json: nothing to tell
    for dimension in SLICES:  # every line in exactly one value, every value a declared one
        assert set(table[f"{dimension} slice"]) <= set(values(run, dimension))
        assert sum(len(slice_rows(table, dimension, v)) for v in values(run, dimension)) == len(TEST)
    assert values(run, "domain") == ["a", "b"]


def test_llm_out_of_domain_flag():
    nan = math.nan
    table = pd.DataFrame({  # as line_table() makes them: *_ood only on lines with a precomputed record
        "evaluated": [False, True, True, True, True],
        "free_ood": [nan, 0, 2, nan, nan],
        "refined_ood": [nan, 0, 0, 1, nan],  # the last: a record without a free or refined variant
        "ood_case": [False, False, True, True, False],
    })
    assert slice_values(table, "ood").tolist() == ["unknown", "no", "yes", "yes", "unknown"]
    assert slice_values(table.drop(columns=["free_ood", "refined_ood"]), "ood").tolist() == ["unknown"] * 5


def test_the_filters_are_the_slices(run):
    table = slice_columns(run, run.line_table())
    table["evaluated"] = [True, True, False, True, False]
    table["ood_case"] = [True, False, False, False, False]
    table["free_ood"] = [1, 0, np.nan, 0, np.nan]
    table = slice_columns(run, table.drop(columns=[f"{d} slice" for d in SLICES]))
    lines = lambda t: t["line"].tolist()  # noqa: E731
    assert lines(filter_lines(table, cold=True)) == lines(slice_rows(table, "cold_start", "yes")) == [0, 1, 3]
    assert lines(filter_lines(table, ood=True)) == lines(slice_rows(table, "ood", "yes")) == [0]
    assert lines(filter_lines(table, domains=["a"])) == lines(slice_rows(table, "domain", "a")) == [1, 2]
    assert lines(filter_lines(table, evaluated=True)) == [0, 1, 3]
    assert lines(filter_lines(table, cold=True, domains=["b"])) == [0, 3]
    assert lines(filter_lines(table)) == list(range(len(TEST)))
    assert lines(slice_rows(table, "ood", "unknown")) == [2, 4]
