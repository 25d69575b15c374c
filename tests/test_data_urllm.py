"""The URLLM release loader (`urllm:DIR`): the real Art-Office copy, a tiny fixture, and
one corruption at a time, each of which must fail with file:line and what was expected."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from data_fixtures import URLLM_ITEMS, URLLM_LINES, URLLM_USERS, set_line, urllm_line, write_urllm_release

from urllm.data import SPLITS, DataError, load_dataset

ART_OFFICE = Path(__file__).resolve().parents[1].parent / "shared/data/amazon-art-office"


# ---------------------------------------------------------------- the real release


@pytest.fixture(scope="module")
def art_office():
    if not (ART_OFFICE / "test.txt").is_file():
        pytest.skip(f"the URLLM Art-Office release is absent at {ART_OFFICE}")
    return load_dataset(f"urllm:{ART_OFFICE}")


def raw_lines(split: str) -> list[list[int]]:
    """Item ids of each line of a split file, read without the loader."""
    rows = []
    for line in (ART_OFFICE / f"{split}.txt").read_text(encoding="utf-8").splitlines():
        fields = [f for f in line.split("\t") if f]
        rows.append([int(f.split("|")[0]) for f in fields[2:]])
    return rows


def raw_ids(name: str) -> set[int]:
    with open(ART_OFFICE / f"items_{name}.csv", newline="", encoding="utf-8") as f:
        return {int(row["idAfter"]) for row in csv.DictReader(f)}


@pytest.mark.real
def test_real_item_counts_and_domains(art_office):
    ds = art_office
    assert ds.domains == ("art", "office")
    assert ds.n_items == 18_639 + 19_757
    assert len(ds.items_of(0)) == 18_639
    assert len(ds.items_of(1)) == 19_757
    # the domain of each id is the file it is listed in (read here without the loader)
    assert set(ds.items_of(0).tolist()) == raw_ids("art")
    assert set(ds.items_of(1).tolist()) == raw_ids("office")
    assert all(t.strip() for t in ds.item_titles)
    assert sum(1 for a in ds.item_attributes if a) > 0.9 * ds.n_items


@pytest.mark.real
def test_real_split_sizes(art_office):
    ds = art_office
    assert {s: len(ds.splits[s]) for s in SPLITS} == {"train": 16_000, "valid": 1_154, "test": 2_000}
    assert {s: len(ds.split_users(s)) for s in SPLITS} == {"train": 8_000, "valid": 577, "test": 1_000}
    test_domains = np.bincount([ex.domain for ex in ds.splits["test"]], minlength=2)
    assert test_domains.tolist() == [1_050, 950]
    # the same counts straight from the file: targets listed in items_art.csv
    art = raw_ids("art")
    assert sum(line[-1] in art for line in raw_lines("test")) == 1_050
    assert len(ds.users) == 9_577


@pytest.mark.real
def test_real_splits_are_user_disjoint(art_office):
    users = {s: art_office.split_users(s) for s in SPLITS}
    assert not users["train"] & users["valid"]
    assert not users["train"] & users["test"]
    assert not users["valid"] & users["test"]
    raw = {s: {art_office.users[u].raw_id for u in users[s]} for s in SPLITS}
    assert not raw["train"] & raw["test"] and not raw["valid"] & raw["test"] and not raw["train"] & raw["valid"]


@pytest.mark.real
def test_real_examples_match_the_files(art_office):
    ds = art_office
    for split in SPLITS:
        lines = raw_lines(split)
        assert len(lines) == len(ds.splits[split])
        for ex, items in zip(ds.splits[split], lines):
            assert len(ex.history) > 0
            assert ds.item_domain[ex.target] == ex.domain
            assert ex.target == items[-1]
            assert ex.history.tolist() == items[:-1]
    # reviewer ids come from users.txt
    first = ds.splits["train"][0]
    assert ds.users[first.user].raw_id == "A7PVZNHRTX1J7"


@pytest.mark.real
def test_real_lines_per_user(art_office):
    """The split invariants urllm/data/integrity.py checks, as they hold in the release:
    two lines per user, same history, different targets; the second line's target is
    always an Art item, and so is the first one's for 341 + 24 + 50 users."""
    ds = art_office
    for split, (n_users, both_art) in {"train": (8_000, 341), "valid": (577, 24), "test": (1_000, 50)}.items():
        lines: dict[int, list] = {}
        for ex in ds.splits[split]:
            lines.setdefault(ex.user, []).append(ex)
        assert len(lines) == n_users
        assert all(len(pair) == 2 for pair in lines.values())
        assert all(np.array_equal(a.history, b.history) and a.target != b.target for a, b in lines.values())
        assert all(b.domain == 0 for _, b in lines.values())
        assert sum(a.domain == 0 for a, _ in lines.values()) == both_art
    assert ds.splits["test"][1].origin == f"{ART_OFFICE}/test.txt:2"
    # a user's known sequence: the shared history, then both targets
    first, second = ds.splits["train"][:2]
    assert ds.users[first.user].items.tolist() == first.history.tolist() + [first.target, second.target]


@pytest.mark.real
def test_real_dataset_validates_and_describes(art_office):
    art_office.validate()
    d = art_office.describe()
    assert d["targets_per_domain"]["test"] == {"art": 1_050, "office": 950}
    assert d["n_items"] == {"art": 18_639, "office": 19_757}


# ---------------------------------------------------------------- the tiny fixture loads right


def test_fixture_loads_exactly(urllm_release):
    ds = load_dataset(f"urllm:{urllm_release}")
    assert ds.domains == ("art", "office")
    assert ds.items_of(0).tolist() == [0, 1, 2, 3]
    assert ds.items_of(1).tolist() == [4, 5, 6, 7]
    assert ds.item_titles[0] == "red brush" and ds.item_titles[4] == "black stapler"
    assert ds.item_attributes[0] == ("arts", "crafts", "painting", "acme")
    for split, rows in URLLM_LINES.items():
        got = [(ds.users[ex.user].raw_id, ex.history.tolist(), ex.target, ex.domain) for ex in ds.splits[split]]
        want = [(URLLM_USERS[u], h, t, 0 if t < 4 else 1) for u, h, t in rows]
        assert got == want
    # a user's known sequence: the shared history, then the targets of their lines
    u0 = next(u for u in ds.users if u.raw_id == "AUSER0")
    assert u0.items.tolist() == [0, 4, 1, 5, 2]
    assert np.all(np.diff(u0.times) > 0)
    assert [len(ds.split_users(s)) for s in SPLITS] == [2, 1, 1]


def test_fixture_domains_option_orders_a_and_b(urllm_release):
    ds = load_dataset(f"urllm:{urllm_release}?domains=office,art")
    assert ds.domains == ("office", "art")
    assert ds.items_of(0).tolist() == [4, 5, 6, 7]
    assert ds.splits["test"][0].domain == 0  # target 6 is an office item, now domain A


def test_fixture_domain_a_is_the_file_ids_start_with(urllm_release):
    # rename so that the file with the low ids sorts last: it must still be domain A
    (urllm_release / "items_art.csv").rename(urllm_release / "items_zeta.csv")
    ds = load_dataset(f"urllm:{urllm_release}")
    assert ds.domains == ("zeta", "office")
    assert ds.items_of(0).tolist() == [0, 1, 2, 3]


def test_fixture_without_users_file(urllm_release):
    (urllm_release / "users.txt").unlink()
    ds = load_dataset(f"urllm:{urllm_release}")
    assert sorted(u.raw_id for u in ds.users) == ["0", "1", "2", "3"]


def test_fixture_without_trailing_tabs(urllm_release):
    path = urllm_release / "test.txt"
    path.write_text("".join(urllm_line(*r, trailing_tab=False) + "\n" for r in URLLM_LINES["test"]), encoding="utf-8")
    ds = load_dataset(f"urllm:{urllm_release}")
    assert [ex.target for ex in ds.splits["test"]] == [6, 1]


# ---------------------------------------------------------------- bad input, one thing at a time


def _replace(name: str, lineno: int, text: str):
    return lambda root: set_line(root / name, lineno, text)


def _write(name: str, text: str):
    return lambda root: (root / name).write_text(text, encoding="utf-8")


BAD = {
    # name: (corruption, substrings the message must contain)
    "missing test.txt": (lambda root: (root / "test.txt").unlink(), ["test.txt", "not found"]),
    "missing items file": (lambda root: (root / "items_office.csv").unlink(), ["items_", "two"]),
    "empty valid.txt": (_write("valid.txt", ""), ["valid.txt", "empty"]),
    "blank-only train.txt": (_write("train.txt", "\n\n"), ["train.txt", "empty"]),
    "truncated line": (_replace("test.txt", 2, "3\t2"), ["test.txt:2", "truncated"]),
    "user index not a number": (_replace("train.txt", 3, "x" + urllm_line(1, [2, 6], 3)[1:]), ["train.txt:3", "user index", "'x'"]),
    "target_pos not a number": (_replace("train.txt", 1, "0\tlast\t0|0|0\t5|1|1"), ["train.txt:1", "target position"]),
    "item id not a number": (_replace("test.txt", 1, "3\t1\tx7|0|0\t6|1|1"), ["test.txt:1", "item id", "'x7'"]),
    "position not a number": (_replace("valid.txt", 2, "2\t1\t1|p|0\t4|1|1"), ["valid.txt:2", "position", "'p'"]),
    "second position not a number": (_replace("valid.txt", 2, "2\t1\t1|0|q\t4|1|1"), ["valid.txt:2", "position", "'q'"]),
    "token without positions": (_replace("test.txt", 2, "3\t1\t3|0|0\t1"), ["test.txt:2", "item|pos|pos"]),
    "unknown item id": (_replace("test.txt", 2, "3\t1\t3|0|0\t99|1|1"), ["test.txt:2", "99", "items_*.csv"]),
    "negative item id": (_replace("train.txt", 4, "1\t1\t-1|0|0\t7|1|1"), ["train.txt:4", "-1"]),
    "target_pos not last": (_replace("valid.txt", 1, "2\t1\t1|0|0\t5|1|1\t0|2|2"), ["valid.txt:1", "target_pos 1", "last position 2"]),
    "item without a title": (_replace("items_office.csv", 3, "21,,5,office products binders"), ["items_office.csv:3", "title"]),
    "blank title": (_replace("items_art.csv", 2, "10,   ,0,arts"), ["items_art.csv:2", "title"]),
    "wrong header": (_replace("items_art.csv", 1, "id,title,idAfter,item_attribute"), ["items_art.csv:1", "header"]),
    "wrong field count": (_replace("items_art.csv", 4, "12,green yarn,2"), ["items_art.csv:4", "4 comma-separated"]),
    "idAfter not a number": (_replace("items_art.csv", 5, "13,clay pot,three,arts"), ["items_art.csv:5", "idAfter", "'three'"]),
    "idAfter listed twice": (_replace("items_office.csv", 5, "23,desk lamp,4,office"), ["items_office.csv:5", "idAfter 4", "twice"]),
    "idAfter outside the range": (_replace("items_office.csv", 5, "23,desk lamp,70,office"), ["items_office.csv:5", "70"]),
    "empty items file": (_write("items_art.csv", ""), ["items_art.csv", "empty"]),
    "header-only items file": (_write("items_art.csv", "idBefore,item_title,idAfter,item_attribute\n"), ["items_art.csv", "no item rows"]),
    "users.txt line without index": (_replace("users.txt", 2, "AUSER1"), ["users.txt:2", "reviewerID"]),
    "users.txt index not a number": (_replace("users.txt", 3, "AUSER2\ttwo"), ["users.txt:3", "'two'"]),
    "not UTF-8": (lambda root: (root / "train.txt").write_bytes(b"0\t1\t0|0|0\t\xff\xfe|1|1\n"), ["train.txt", "UTF-8"]),
    # absurd numbers: each a DataError with file:line, never an OverflowError from numpy
    "user index of 30 digits": (_replace("train.txt", 1, "1" * 30 + "\t1\t0|0|0\t5|1|1"), ["train.txt:1", "user index 111", "30 digits", "at most 18"]),
    "negative user index": (_replace("train.txt", 2, "-3\t1\t0|0|0\t2|1|1"), ["train.txt:2", "user index -3", "outside 0.."]),
    "user index with an underscore": (_replace("test.txt", 1, "3_0\t1\t3|0|0\t6|1|1"), ["test.txt:1", "integer user index", "'3_0'"]),
    "item id of 20 digits": (_replace("test.txt", 1, "3\t1\t3|0|0\t" + "9" * 20 + "|1|1"), ["test.txt:1", "item id 999", "20 digits", "at most 18"]),
    "item id of 17 digits": (_replace("test.txt", 1, "3\t1\t3|0|0\t" + "9" * 17 + "|1|1"), ["test.txt:1", "items_*.csv", "expected 0..7"]),
    "position of 25 digits": (_replace("valid.txt", 1, "2\t1\t1|0|0\t5|" + "9" * 25 + "|1"), ["valid.txt:1", "position 999", "25 digits"]),
    "position not its place": (_replace("valid.txt", 1, "2\t1\t1|0|0\t5|7|7"), ["valid.txt:1", "positions 7|7", "expected 1|1"]),
    "second position not its place": (_replace("train.txt", 3, "1\t1\t2|0|0\t3|1|0"), ["train.txt:3", "positions 1|0", "expected 1|1"]),
    "negative target_pos": (_replace("test.txt", 2, "3\t-1\t3|0|0\t1|1|1"), ["test.txt:2", "target_pos -1"]),
    "idAfter of 30 digits": (_replace("items_art.csv", 3, "11,blue canvas," + "1" * 30 + ",arts"), ["items_art.csv:3", "item id (idAfter) 111", "30 digits"]),
    "negative idAfter": (_replace("items_art.csv", 3, "11,blue canvas,-1,arts"), ["items_art.csv:3", "idAfter -1 outside 0..7"]),
    "users.txt index of 30 digits": (_replace("users.txt", 2, "AUSER1\t" + "7" * 30), ["users.txt:2", "user index 777", "30 digits"]),
    "users.txt negative index": (_replace("users.txt", 2, "AUSER1\t-1"), ["users.txt:2", "user index -1 outside"]),
    "CSV field over the csv limit": (_replace("items_art.csv", 4, '12,"' + "y" * 200_000 + '",2,arts'), ["items_art.csv:4", "not CSV", "field limit"]),
    # a folder where a file belongs
    "folder instead of test.txt": (lambda root: ((root / "test.txt").unlink(), (root / "test.txt").mkdir()), ["test.txt", "is a directory"]),
    "folder instead of users.txt": (lambda root: ((root / "users.txt").unlink(), (root / "users.txt").mkdir()), ["users.txt", "is a directory"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_names_file_and_line(urllm_release, case):
    corrupt, expected = BAD[case]
    corrupt(urllm_release)
    with pytest.raises(DataError) as info:
        load_dataset(f"urllm:{urllm_release}")
    message = str(info.value)
    for part in expected:
        assert part in message, f"{case}: {part!r} not in {message!r}"
    assert "\n" not in message


def test_permission_denied(urllm_release, monkeypatch):
    """Reading as root ignores file modes, so the refusal is simulated at read_text()."""
    real_read = Path.read_text

    def read(path, *args, **kwargs):
        if path.name == "valid.txt":
            raise PermissionError(13, "Permission denied", str(path))
        return real_read(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read)
    with pytest.raises(DataError) as info:
        load_dataset(f"urllm:{urllm_release}")
    assert "valid.txt: cannot read it (Permission denied)" in str(info.value)


def test_untouched_fixture_loads(tmp_path):
    """Sanity of the bad-input table: without a corruption the fixture loads."""
    load_dataset(f"urllm:{write_urllm_release(tmp_path / 'ok')}")


def test_not_a_directory(tmp_path):
    with pytest.raises(DataError, match="not a directory"):
        load_dataset(f"urllm:{tmp_path / 'nowhere'}")


def test_domains_option_needs_two_names(urllm_release):
    with pytest.raises(DataError, match="two names"):
        load_dataset(f"urllm:{urllm_release}?domains=art")
    with pytest.raises(DataError, match="items_paper.csv"):
        load_dataset(f"urllm:{urllm_release}?domains=art,paper")


def test_fixture_items_are_what_was_written(urllm_release):
    ds = load_dataset(f"urllm:{urllm_release}")
    for d, name in enumerate(("art", "office")):
        for id_before, title, gid, attrs in URLLM_ITEMS[name]:
            assert ds.item_titles[gid] == title
            assert ds.item_domain[gid] == d
            assert ds.item_attributes[gid] == tuple(attrs.split())
            assert ds.item_raw_ids[gid] == f"{name}:{id_before}"
