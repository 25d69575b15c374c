"""The `amazon:DIR:CatA,CatB` source on small Amazon-2018-format dumps written to tmp_path,
plain and gzip-compressed: what survives the filters, sequence order, metadata, splits,
and one bad input at a time."""
from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from data_fixtures import AMAZON_CATS, AMAZON_META, amazon_reviews, amazon_spec, refused_by, write_amazon

from urllm.data import SPLITS, load_dataset

ART, OFFICE = AMAZON_CATS
ART_ATTRS = ("arts", "crafts", "sewing", "painting", "acme")
OFFICE_ATTRS = ("office", "products", "office", "school", "supplies", "bic", "corp")


@pytest.fixture(params=[False, True], ids=["json", "json.gz"])
def gz(request) -> bool:
    return request.param


@pytest.fixture
def dumps(tmp_path, gz) -> Path:
    return write_amazon(tmp_path / "amazon", gz=gz)


def review_file(root: Path, cat: str, meta: bool = False) -> Path:
    stem = f"meta_{cat}" if meta else cat
    return next(p for p in (root / f"{stem}.json", root / f"{stem}.json.gz") if p.exists())


def read_text(path: Path) -> str:
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return f.read()
    return path.read_text(encoding="utf-8")


def write_text(path: Path, text: str) -> None:
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")


def set_line(path: Path, lineno: int, text: str) -> None:
    lines = read_text(path).splitlines()
    lines[lineno - 1] = text
    write_text(path, "\n".join(lines) + "\n")


def append_line(path: Path, obj) -> None:
    write_text(path, read_text(path) + json.dumps(obj) + "\n")


def n_lines(path: Path) -> int:
    return len(read_text(path).splitlines())


# ---------------------------------------------------------------- a good dump


def test_counts_and_domains(dumps):
    ds = load_dataset(amazon_spec(dumps))
    assert ds.domains == AMAZON_CATS
    # ARARE is reviewed once: the k-core filter drops it
    assert [ds.item_raw_ids[i] for i in ds.items_of(0)] == [f"{ART}:A{k}" for k in range(1, 5)]
    assert [ds.item_raw_ids[i] for i in ds.items_of(1)] == [f"{OFFICE}:B{k}" for k in range(1, 5)]
    d = ds.describe()
    assert d["n_items"] == {ART: 4, OFFICE: 4}
    assert d["n_users"] == 10
    assert d["n_interactions"] == 40  # 4 per user: the repeated review counted once


def test_k_core_drops_single_review_user_and_item(dumps):
    ds = load_dataset(amazon_spec(dumps))
    users = {u.raw_id for u in ds.users}
    assert users == {f"U{i}" for i in range(10)}  # LONER (one review) and ONLYA (no Office review) gone
    assert not any(r.endswith(":ARARE") for r in ds.item_raw_ids)
    # U0 keeps its other four reviews after ARARE goes
    u0 = next(u for u in ds.users if u.raw_id == "U0")
    assert len(u0.items) == 4


def test_k_core_keeps_what_meets_the_threshold(dumps):
    ds = load_dataset(amazon_spec(dumps).replace("k_core=2", "k_core=1").replace("min_per_domain=1", "min_per_domain=0"))
    assert {u.raw_id for u in ds.users} == {f"U{i}" for i in range(10)} | {"LONER", "ONLYA"}
    assert f"{ART}:ARARE" in ds.item_raw_ids


def test_sequences_sorted_by_time(dumps):
    ds = load_dataset(amazon_spec(dumps))
    raw = {r: i for i, r in enumerate(ds.item_raw_ids)}
    for u in ds.users:
        assert np.all(np.diff(u.times) > 0)
    i = 3  # U3: A1 at +10, B2 at +20, A4 at +30, B4 at +40 (written in another order)
    u3 = next(u for u in ds.users if u.raw_id == f"U{i}")
    want = [f"{ART}:A1", f"{OFFICE}:B2", f"{ART}:A4", f"{OFFICE}:B4"]
    assert u3.items.tolist() == [raw[r] for r in want]
    base = 1_500_000_000 + 10_000 * i
    assert u3.times.tolist() == [base + 10, base + 20, base + 30, base + 40]


def test_repeated_review_kept_once_earliest(dumps):
    ds = load_dataset(amazon_spec(dumps))
    u1 = next(u for u in ds.users if u.raw_id == "U1")
    a2 = ds.item_raw_ids.index(f"{ART}:A2")
    assert u1.items.tolist().count(a2) == 1
    assert u1.times[u1.items.tolist().index(a2)] == 1_500_010_030  # not the repeat at +50


def test_titles_and_attributes_from_meta(dumps):
    ds = load_dataset(amazon_spec(dumps))
    a1 = ds.item_raw_ids.index(f"{ART}:A1")
    b2 = ds.item_raw_ids.index(f"{OFFICE}:B2")
    assert ds.item_titles[a1] == "Fine & Dandy Brush"  # HTML entity decoded
    assert ds.item_titles[b2] == "Ring Binder"
    for i in ds.items_of(0):
        assert ds.item_attributes[i] == ART_ATTRS
    for i in ds.items_of(1):
        assert ds.item_attributes[i] == OFFICE_ATTRS


def test_splits_user_disjoint_leave_one_out(dumps):
    ds = load_dataset(amazon_spec(dumps))
    users = [ds.split_users(s) for s in SPLITS]
    assert [len(u) for u in users] == [6, 2, 2]  # 10 users, valid_frac=0.2, test_frac=0.2
    assert not users[0] & users[1] and not users[0] & users[2] and not users[1] & users[2]
    assert {s: len(ds.splits[s]) for s in SPLITS} == {"train": 12, "valid": 4, "test": 4}
    for s in SPLITS:
        for ex in ds.splits[s]:
            u = ds.users[ex.user]
            t = np.flatnonzero(ds.item_domain[u.items] == ex.domain)[-1]
            assert ex.target == u.items[t] and ex.history.tolist() == u.items[:t].tolist()
            assert ds.item_domain[ex.target] == ex.domain


def test_same_seed_same_split_other_seed_differs(dumps):
    def users(spec):
        ds = load_dataset(spec)
        return [sorted(ds.users[i].raw_id for i in ds.split_users(s)) for s in SPLITS]

    spec = amazon_spec(dumps)
    assert users(spec) == users(spec)
    assert any(users(spec + f"&seed={seed}") != users(spec) for seed in (1, 2, 3))


def test_same_asin_in_both_categories_is_two_items(tmp_path):
    reviews, meta = amazon_reviews(), copy.deepcopy(AMAZON_META)
    meta[ART]["items"]["X1"] = "Shared Thing"
    meta[OFFICE]["items"]["X1"] = "Shared Thing"
    for cat in AMAZON_CATS:
        for user in ("U0", "U1"):
            reviews[cat].append({"reviewerID": user, "asin": "X1", "unixReviewTime": 1_400_000_000})
    ds = load_dataset(amazon_spec(write_amazon(tmp_path, reviews=reviews, meta=meta)))
    assert {f"{ART}:X1", f"{OFFICE}:X1"} <= set(ds.item_raw_ids)
    assert ds.item_domain[ds.item_raw_ids.index(f"{ART}:X1")] == 0
    assert ds.item_domain[ds.item_raw_ids.index(f"{OFFICE}:X1")] == 1


# ---------------------------------------------------------------- bad input


def _raises(spec: str, *parts: str) -> str:
    return refused_by(load_dataset, spec, *parts)


def test_malformed_json_line(dumps):
    path = review_file(dumps, ART)
    set_line(path, 3, '{"reviewerID": "U1", "asin": ')
    _raises(amazon_spec(dumps), f"{path.name}:3", "malformed JSON")


def test_line_that_is_not_an_object(dumps):
    path = review_file(dumps, OFFICE, meta=True)
    set_line(path, 2, "[1, 2]")
    _raises(amazon_spec(dumps), f"{path.name}:2", "JSON object")


def test_non_numeric_review_time(dumps):
    path = review_file(dumps, OFFICE)
    set_line(path, 5, json.dumps({"reviewerID": "U1", "asin": "B2", "unixReviewTime": "last week"}))
    _raises(amazon_spec(dumps), f"{path.name}:5", "unixReviewTime", "'last week'")


def test_infinite_review_time(dumps):
    path = review_file(dumps, OFFICE)
    set_line(path, 4, json.dumps({"reviewerID": "U1", "asin": "B2", "unixReviewTime": "inf"}))
    _raises(amazon_spec(dumps), f"{path.name}:4", "unixReviewTime")


def test_missing_reviewer_id(dumps):
    path = review_file(dumps, ART)
    set_line(path, 2, json.dumps({"asin": "A1", "unixReviewTime": 1}))
    _raises(amazon_spec(dumps), f"{path.name}:2", "reviewerID")


def test_review_of_unknown_item_and_skip_unknown(dumps):
    path = review_file(dumps, OFFICE)
    append_line(path, {"reviewerID": "U2", "asin": "NOPE", "unixReviewTime": 1_600_000_000})
    meta = review_file(dumps, OFFICE, meta=True)
    _raises(amazon_spec(dumps), f"{path.name}:{n_lines(path)}", "'NOPE'", meta.name, "skip_unknown")
    ds = load_dataset(amazon_spec(dumps, "&skip_unknown=true"))
    assert not any("NOPE" in r for r in ds.item_raw_ids)
    assert ds.describe()["n_interactions"] == 40


def test_meta_item_without_title_and_skip_unknown(dumps):
    meta = review_file(dumps, ART, meta=True)
    lines = read_text(meta).splitlines()
    row = next(n for n, line in enumerate(lines, start=1) if json.loads(line)["asin"] == "A3")
    obj = json.loads(lines[row - 1]) | {"title": "  "}
    set_line(meta, row, json.dumps(obj))
    _raises(amazon_spec(dumps), f"{meta.name}:{row}", "'A3'", "title")
    ds = load_dataset(amazon_spec(dumps, "&skip_unknown=true"))
    assert f"{ART}:A3" not in ds.item_raw_ids  # the item and its reviews are dropped
    assert len(ds.items_of(0)) == 3


def test_category_without_file(dumps):
    _raises(f"amazon:{dumps}:{ART},Toys_and_Games", "'Toys_and_Games'", "Toys_and_Games.json")
    review_file(dumps, ART, meta=True).unlink()
    _raises(amazon_spec(dumps), f"'{ART}'", f"meta_{ART}.json")


@pytest.mark.parametrize("shape", ["{root}:{a}", "{root}:{a},", "{root}", "{root}:{a},{b},Toys"])
def test_wrong_spec_shape(dumps, shape):
    arg = shape.format(root=dumps, a=ART, b=OFFICE)
    _raises(f"amazon:{arg}", "expected amazon:DIR:CategoryA,CategoryB")


def test_not_a_directory(tmp_path):
    _raises(f"amazon:{tmp_path / 'nowhere'}:{ART},{OFFICE}", "not a directory")


@pytest.mark.parametrize("meta", [False, True], ids=["reviews", "meta"])
def test_empty_file(dumps, meta):
    path = review_file(dumps, OFFICE, meta=meta)
    write_text(path, "")
    _raises(amazon_spec(dumps), path.name, "empty")


def test_corrupt_gzip(tmp_path):
    root = write_amazon(tmp_path, gz=True)
    (root / f"{ART}.json.gz").write_bytes(b"this is not gzip\n")
    _raises(amazon_spec(root), f"{ART}.json.gz", "cannot read")


def test_nothing_survives_the_filter(dumps):
    _raises(amazon_spec(dumps).replace("k_core=2", "k_core=50"), "nothing survives", "k_core=50")


# ---------------------------------------------------------------- absurd numbers and unreadable files

TIME_RANGE = "whole seconds since 1970 (0..253402300799)"


@pytest.mark.parametrize(
    "stamp, shown",
    [(1e300, "1e+300"), ("1e300", "1e300"), (-5, "-5"), (float("nan"), "nan"), (1_500_000_000.5, "1500000000.5"),
     (10**30, "1" + "0" * 30), (True, "True"), ("12abc", "12abc")],
    ids=["1e300", "1e300 text", "negative", "NaN", "fraction", "10**30", "bool", "text"],
)
def test_absurd_review_time(dumps, stamp, shown):
    path = review_file(dumps, ART)
    set_line(path, 2, json.dumps({"reviewerID": "U0", "asin": "A1", "unixReviewTime": stamp}))
    _raises(amazon_spec(dumps), f"{path.name}:2", "unixReviewTime", TIME_RANGE, repr(shown))


def test_review_time_as_text_or_integral_float_is_read(dumps):
    path = review_file(dumps, ART)
    first = json.loads(read_text(path).splitlines()[0])
    set_line(path, 1, json.dumps(first | {"unixReviewTime": str(first["unixReviewTime"])}))
    set_line(path, 2, json.dumps(json.loads(read_text(path).splitlines()[1]) | {"unixReviewTime": 1_500_000_010.0}))
    ds = load_dataset(amazon_spec(dumps))
    assert ds.describe()["n_interactions"] == 40


def test_integer_too_long_for_python(dumps):
    path = review_file(dumps, OFFICE)
    set_line(path, 3, '{"reviewerID": "U1", "asin": "B2", "unixReviewTime": ' + "9" * 5000 + "}")
    _raises(amazon_spec(dumps), f"{path.name}:3", "number too long")


def test_json_nested_too_deeply(dumps):
    path = review_file(dumps, OFFICE, meta=True)
    set_line(path, 1, '{"asin": ' + "[" * 100_000 + "]" * 100_000 + "}")
    _raises(amazon_spec(dumps), f"{path.name}:1", "nested too deeply")


@pytest.mark.parametrize("key, value", [("reviewerID", ["U0"]), ("asin", {"id": "A1"}), ("reviewerID", True)])
def test_id_of_the_wrong_type(dumps, key, value):
    path = review_file(dumps, ART)
    obj = {"reviewerID": "U0", "asin": "A1", "unixReviewTime": 1_500_000_000} | {key: value}
    set_line(path, 4, json.dumps(obj))
    _raises(amazon_spec(dumps), f"{path.name}:4", f"expected {key!r} to be a string", type(value).__name__)


def test_title_of_the_wrong_type(dumps):
    meta = review_file(dumps, ART, meta=True)
    set_line(meta, 1, json.dumps({"asin": "A1", "title": ["Fine", "Brush"]}))
    _raises(amazon_spec(dumps), f"{meta.name}:1", "title of 'A1' to be a string", "list")


def test_directory_instead_of_a_dump(tmp_path):
    root = write_amazon(tmp_path / "amazon")
    (root / f"{OFFICE}.json").unlink()
    (root / f"{OFFICE}.json").mkdir()
    _raises(amazon_spec(root), f"{OFFICE}.json", "is a directory, not a file")


def test_permission_denied(dumps, monkeypatch):
    """Reading as root ignores file modes, so the refusal is simulated at open()."""
    import gzip as gzip_module

    from urllm.data import amazon

    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(amazon, "open", denied, raising=False)
    monkeypatch.setattr(gzip_module, "open", denied)
    _raises(amazon_spec(dumps), "meta_", "cannot read it (Permission denied)")


def test_category_name_too_long(dumps):
    _raises(f"amazon:{dumps}:{ART},{'O' * 300}", "File name too long")


def test_truncated_gzip(tmp_path):
    root = write_amazon(tmp_path, gz=True)
    path = root / f"{OFFICE}.json.gz"
    path.write_bytes(path.read_bytes()[:-12])
    _raises(amazon_spec(root), path.name, "cannot read")


def test_corrupt_gzip_stream(tmp_path):
    """A valid gzip header over damaged deflate data raises zlib.error, not OSError."""
    root = write_amazon(tmp_path, gz=True)
    path = root / f"{OFFICE}.json.gz"
    data = bytearray(path.read_bytes())
    data[20:40] = bytes(b ^ 0xFF for b in data[20:40])
    path.write_bytes(bytes(data))
    _raises(amazon_spec(root), path.name, "cannot read", "decompressing")
