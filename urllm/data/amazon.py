"""Loader for `amazon:DIR:CategoryA,CategoryB`: raw Amazon 2018 review dumps, the way a
user brings their own data.

For each category DIR holds `<Category>.json` or `<Category>.json.gz` (reviews, one JSON
object a line with reviewerID, asin, unixReviewTime) and `meta_<Category>.json[.gz]`
(asin, title, and optionally category and brand). Repeated (user, item) reviews keep the
earliest; then a k-core filter (users and items with at least `k_core` interactions,
users with at least `min_per_domain` in each domain, repeated until stable) and the
user-disjoint leave-one-out split of `urllm.data.splits`. Review times must be whole
seconds since 1970 (an absurd number, like 1e300, is refused with file:line).
"""
from __future__ import annotations

import gzip
import html
import json
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from urllm.data.checks import (
    MAX_COUNT,
    MAX_SEED,
    MAX_UNIX_TIME,
    check_dir,
    check_int,
    check_names,
    check_split_fractions,
)
from urllm.data.dataset import Dataset
from urllm.data.errors import DataError, cannot_read, shown, where
from urllm.data.splits import user_disjoint_splits, users_from_sorted


@dataclass
class AmazonConfig:
    """Options of `amazon:DIR:A,B?key=value`."""

    k_core: int = 5  # users and items need at least this many interactions (both domains together)
    min_per_domain: int = 2  # users need at least this many interactions in each domain
    skip_unknown: bool = False  # drop reviews of items missing from meta or without a title, instead of failing
    valid_frac: float = 0.1  # share of users in the valid split
    test_frac: float = 0.1  # share of users in the test split (unseen in training)
    seed: int = 0  # seed of the user split

    def validate(self) -> None:
        """Every option in range (DataError naming the field); called by parse_spec."""
        check_int("k_core", self.k_core, 1, MAX_COUNT)
        check_int("min_per_domain", self.min_per_domain, 0, MAX_COUNT)
        check_split_fractions(self.valid_frac, self.test_frac)
        check_int("seed", self.seed, 0, MAX_SEED)


def split_arg(arg: str, spec: str) -> tuple[Path, list[str]]:
    """DIR:CategoryA,CategoryB -> (DIR, [A, B]); the categories name files, so no '/'."""
    root_text, sep, cats = arg.rpartition(":")
    if not sep or len([c for c in cats.split(",") if c.strip()]) != 2:
        raise DataError(f"{spec!r}: expected amazon:DIR:CategoryA,CategoryB (two categories)")
    return Path(root_text), check_names("categories", cats, 2, "two categories, e.g. 'Arts_Crafts_and_Sewing,Office_Products'")


def check_arg(arg: str, spec: str) -> None:
    root, _ = split_arg(arg, spec)
    check_dir(str(root), "the folder with the Amazon 2018 dumps")


def _find(root: Path, stem: str, category: str) -> Path:
    for suffix in (".json", ".json.gz"):
        path = root / f"{stem}{suffix}"
        try:
            if path.is_file():
                return path
            if path.exists():
                raise DataError(f"{shown(path)}: is a directory, not a file (expected the JSON lines of category {category!r})")
        except OSError as err:  # a name too long for the file system, ...
            raise cannot_read(path, err, f"the dump of category {category!r}") from None
    raise DataError(f"category {category!r} has no file: expected {shown(root / stem)}.json or {stem}.json.gz")


def _json_lines(path: Path):
    """(line number, object) for each non-blank line; a clear error on malformed JSON."""
    opener = gzip.open if path.suffix == ".gz" else open
    seen = False
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(f"{where(path, n)}: malformed JSON ({err.msg}); expected one JSON object a line") from None
                except ValueError:  # Python refuses integers of 4,300+ digits
                    raise DataError(f"{where(path, n)}: a number too long to read; expected one JSON object a line") from None
                except RecursionError:
                    raise DataError(f"{where(path, n)}: JSON nested too deeply; expected one JSON object a line") from None
                if not isinstance(obj, dict):
                    raise DataError(f"{where(path, n)}: expected a JSON object, got {type(obj).__name__}")
                seen = True
                yield n, obj
    except (EOFError, UnicodeDecodeError, zlib.error) as err:  # truncated or corrupt gzip, not UTF-8
        raise DataError(f"{shown(path)}: cannot read ({err}); expected UTF-8 JSON lines, gzip-compressed if .gz") from None
    except OSError as err:  # permission denied, a folder, not gzip ...
        raise cannot_read(path, err, "UTF-8 JSON lines, gzip-compressed if .gz") from None
    if not seen:
        raise DataError(f"{shown(path)}: file is empty")


def _field(obj: dict, key: str, path: Path, line: int) -> str:
    """A required id (reviewerID, asin): a non-empty string (or a number, as some dumps write ids)."""
    value = obj.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(f"{where(path, line)}: missing {key!r}")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(f"{where(path, line)}: expected {key!r} to be a string, got {type(value).__name__}")
    return str(value).strip()


def _review_time(value, path: Path, line: int) -> int:
    """unixReviewTime as whole seconds since 1970 (an int, an integral float, or such text)."""
    number = value
    if isinstance(value, str):
        try:
            text = value.strip()
            number = int(text) if re.fullmatch(r"[0-9]{1,19}", text) else float(text)
        except ValueError:
            number = None
    if isinstance(number, float) and number.is_integer():  # False for nan and inf
        number = int(number)
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= MAX_UNIX_TIME:
        raise DataError(
            f"{where(path, line)}: expected a numeric unixReviewTime in whole seconds since 1970"
            f" (0..{MAX_UNIX_TIME}), got {shown(str(value))!r}"
        )
    return number


_WORD = re.compile(r"[a-z0-9]+")


def _read_meta(path: Path, skip_unknown: bool) -> dict[str, tuple[str, tuple[str, ...]]]:
    meta = {}
    for n, obj in _json_lines(path):
        asin = _field(obj, "asin", path, n)
        title = obj.get("title") or ""
        if isinstance(title, bool) or not isinstance(title, (str, int, float)):
            raise DataError(f"{where(path, n)}: expected the title of {asin!r} to be a string, got {type(title).__name__}")
        title = html.unescape(str(title)).strip()
        if not title:
            if skip_unknown:
                continue
            raise DataError(f"{where(path, n)}: item {asin!r} has no title (add ?skip_unknown=true to drop such items)")
        cats = obj.get("category") or []
        cats = cats if isinstance(cats, list) else [cats]
        text = " ".join(html.unescape(str(c)) for c in cats) + " " + str(obj.get("brand") or "")
        meta.setdefault(asin, (title, tuple(_WORD.findall(text.lower()))))
    return meta


def _read_reviews(path: Path, domain: int, meta: dict, skip_unknown: bool, meta_path: Path) -> list[tuple]:
    rows = []
    for n, obj in _json_lines(path):
        user = _field(obj, "reviewerID", path, n)
        asin = _field(obj, "asin", path, n)
        if obj.get("unixReviewTime") is None:
            raise DataError(f"{where(path, n)}: missing 'unixReviewTime'")
        t = _review_time(obj["unixReviewTime"], path, n)
        if asin not in meta:
            if skip_unknown:
                continue
            raise DataError(
                f"{where(path, n)}: item {asin!r} is not in {meta_path.name} (add ?skip_unknown=true to drop such reviews)"
            )
        rows.append((user, domain, asin, t, n))
    return rows


def k_core(frame: pd.DataFrame, k: int, min_per_domain: int) -> pd.DataFrame:
    """Drop users and items below the thresholds until nothing changes."""
    while True:
        before = len(frame)
        frame = frame[frame.groupby("item")["user"].transform("size") >= k]
        frame = frame[frame.groupby("user")["item"].transform("size") >= k]
        per_domain = frame.groupby(["user", "domain"]).size().unstack(fill_value=0)
        ok = per_domain.index[(per_domain.reindex(columns=[0, 1], fill_value=0) >= min_per_domain).all(axis=1)]
        frame = frame[frame["user"].isin(ok)]
        if len(frame) == before:
            return frame


def load_amazon(arg: str, cfg: AmazonConfig, spec: str) -> Dataset:
    root, categories = split_arg(arg, spec)
    rows, metas, review_paths = [], [], []
    for d, cat in enumerate(categories):
        review_path, meta_path = _find(root, cat, cat), _find(root, f"meta_{cat}", cat)
        review_paths.append(review_path)
        meta = _read_meta(meta_path, cfg.skip_unknown)
        metas.append(meta)
        rows += _read_reviews(review_path, d, meta, cfg.skip_unknown, meta_path)
    frame = pd.DataFrame(rows, columns=["user", "domain", "asin", "t", "line"])
    frame["item"] = frame["domain"].astype(str) + ":" + frame["asin"]  # one asin in both categories = two items
    frame = frame.sort_values(["t", "domain", "line"], kind="stable").drop_duplicates(["user", "item"])
    frame = k_core(frame, cfg.k_core, cfg.min_per_domain)
    if frame.empty:
        raise DataError(
            f"{spec!r}: nothing survives the filter (k_core={cfg.k_core}, min_per_domain={cfg.min_per_domain});"
            " lower them with ?k_core=N&min_per_domain=M"
        )
    keys = frame[["domain", "asin"]].drop_duplicates().sort_values(["domain", "asin"])
    item_id = {(d, a): i for i, (d, a) in enumerate(zip(keys["domain"], keys["asin"]))}
    titles = [metas[d][a][0] for d, a in zip(keys["domain"], keys["asin"])]
    attributes = [metas[d][a][1] for d, a in zip(keys["domain"], keys["asin"])]
    domain = keys["domain"].to_numpy(np.int8)
    frame["id"] = [item_id[k] for k in zip(frame["domain"], frame["asin"])]
    frame = frame.sort_values(["user", "t", "domain", "line"], kind="stable")
    users = users_from_sorted(frame["user"].to_numpy(), frame["id"].to_numpy(np.int64), frame["t"].to_numpy(np.int64))
    source = f"{shown(review_paths[0])} + {review_paths[1].name}"  # a user's reviews come from both files
    splits = user_disjoint_splits(users, domain, cfg.valid_frac, cfg.test_frac, cfg.seed, source)
    raw = [f"{categories[d]}:{a}" for d, a in zip(keys["domain"], keys["asin"])]
    return Dataset(spec, tuple(categories), titles, domain, attributes, raw, users, splits)
