"""Loader for the URLLM release format (`urllm:DIR`), e.g. ../shared/data/amazon-art-office.

DIR holds two `items_<domain>.csv` files (header `idBefore,item_title,idAfter,item_attribute`;
`idAfter` is the global item id), `users.txt` (`reviewerID<TAB>user_index`, optional) and
`train.txt`, `valid.txt`, `test.txt` with lines
`user_index<TAB>target_pos<TAB>item|pos|pos<TAB>...`: the last item is the target, the rest
the history. The release's own split is kept exactly.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from urllm.data.dataset import SPLITS, Dataset, Example, User
from urllm.data.errors import DataError, where

ITEM_HEADER = ["idBefore", "item_title", "idAfter", "item_attribute"]


@dataclass
class UrllmConfig:
    """Options of `urllm:DIR?key=value`."""

    domains: str = ""  # "art,office": the two `items_<name>.csv` files, A first; default: both files, A = lower ids


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: file not found (expected it in the URLLM release folder)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    if not text.strip():
        raise DataError(f"{path}: file is empty")
    return text.splitlines()


def _int(value: str, path: Path, line: int, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise DataError(f"{where(path, line)}: expected an integer {what}, got {value!r}") from None


def _read_items(path: Path) -> list[tuple[int, str, str, str]]:
    """Rows of (global id, title, attribute words, original id)."""
    lines = _read_lines(path)
    rows = []
    for n, fields in enumerate(csv.reader(lines), start=1):
        if n == 1:
            if fields != ITEM_HEADER:
                raise DataError(f"{where(path, 1)}: expected header {','.join(ITEM_HEADER)}, got {lines[0]!r}")
            continue
        if len(fields) != 4:
            raise DataError(f"{where(path, n)}: expected 4 comma-separated fields, got {len(fields)}")
        id_before, title, id_after, attrs = fields
        if not title.strip():
            raise DataError(f"{where(path, n)}: item {id_after!r} has no title")
        rows.append((_int(id_after, path, n, "item id (idAfter)"), title.strip(), attrs, id_before))
    if not rows:
        raise DataError(f"{path}: no item rows after the header")
    return rows


def _item_files(root: Path, cfg: UrllmConfig) -> list[Path]:
    if cfg.domains:
        names = [d.strip() for d in cfg.domains.split(",")]
        if len(names) != 2:
            raise DataError(f"domains={cfg.domains!r}: expected two names, e.g. 'art,office'")
        return [root / f"items_{name}.csv" for name in names]
    files = sorted(root.glob("items_*.csv"))
    if len(files) != 2:
        raise DataError(f"{root}: expected exactly two items_<domain>.csv files, found {[f.name for f in files]}")
    return files


def _read_sequences(path: Path, n_items: int) -> list[tuple[int, np.ndarray, np.ndarray, int]]:
    """Rows of (user index, history ids, history positions, target id)."""
    rows = []
    for n, line in enumerate(_read_lines(path), start=1):
        fields = [f for f in line.rstrip("\n").split("\t") if f != ""]
        if not fields:
            continue  # a blank line
        if len(fields) < 3:
            raise DataError(
                f"{where(path, n)}: expected user_index, target_pos and at least one item|pos|pos,"
                f" got {len(fields)} field(s) (truncated line?)"
            )
        user = _int(fields[0], path, n, "user index")
        target_pos = _int(fields[1], path, n, "target position")
        items, positions = [], []
        for token in fields[2:]:
            parts = token.split("|")
            if len(parts) != 3:
                raise DataError(f"{where(path, n)}: expected item|pos|pos, got {token!r}")
            item = _int(parts[0], path, n, "item id")
            if not 0 <= item < n_items:
                raise DataError(f"{where(path, n)}: item id {item} is in no items_*.csv (expected 0..{n_items - 1})")
            items.append(item)
            positions.append(_int(parts[1], path, n, "position"))
            _int(parts[2], path, n, "position")
        if target_pos != len(items) - 1:
            raise DataError(
                f"{where(path, n)}: target_pos {target_pos} is not the last position {len(items) - 1}"
            )
        rows.append(
            (user, np.array(items[:-1], dtype=np.int64), np.array(positions[:-1], dtype=np.int64), items[-1])
        )
    if not rows:
        raise DataError(f"{path}: no sequence lines")
    return rows


def _read_user_ids(path: Path) -> dict[int, str]:
    if not path.exists():
        return {}
    ids = {}
    for n, line in enumerate(_read_lines(path), start=1):
        fields = line.rstrip("\n").split("\t")
        if len(fields) != 2:
            raise DataError(f"{where(path, n)}: expected reviewerID<TAB>user_index, got {line!r}")
        ids[_int(fields[1], path, n, "user index")] = fields[0]
    return ids


def load_urllm(arg: str, cfg: UrllmConfig, spec: str) -> Dataset:
    root = Path(arg)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory (expected a URLLM release folder, e.g. urllm:../shared/data/amazon-art-office)")
    files = _item_files(root, cfg)
    per_file = [_read_items(f) for f in files]
    if not cfg.domains and min(r[0] for r in per_file[1]) < min(r[0] for r in per_file[0]):
        files, per_file = files[::-1], per_file[::-1]  # domain A is the file the ids start with
    n_items = sum(len(rows) for rows in per_file)
    titles: list[str | None] = [None] * n_items
    domain = np.full(n_items, -1, dtype=np.int8)
    attrs: list[tuple[str, ...]] = [()] * n_items
    raw: list[str] = [""] * n_items
    for d, (path, rows) in enumerate(zip(files, per_file)):
        for line, (gid, title, attr, id_before) in enumerate(rows, start=2):
            if not 0 <= gid < n_items:
                raise DataError(f"{where(path, line)}: idAfter {gid} outside 0..{n_items - 1} (ids must be dense)")
            if titles[gid] is not None:
                raise DataError(f"{where(path, line)}: idAfter {gid} appears twice")
            titles[gid], domain[gid], attrs[gid] = title, d, tuple(attr.split())
            raw[gid] = f"{path.stem.removeprefix('items_')}:{id_before}"

    user_ids = _read_user_ids(root / "users.txt")
    users: list[User] = []
    user_slot: dict[int, int] = {}
    splits: dict[str, list[Example]] = {}
    for split in SPLITS:
        path = root / f"{split}.txt"
        splits[split] = []
        for user, history, positions, target in _read_sequences(path, n_items):
            if user not in user_slot:
                user_slot[user] = len(users)
                users.append(User(user_ids.get(user, str(user)), history, positions))
            slot = user_slot[user]
            u = users[slot]
            # The user's known sequence: the shared history, then each line's target.
            last = int(u.times[-1]) + 1 if len(u.times) else 0
            u.items = np.append(u.items, target)
            u.times = np.append(u.times, max(last, len(history)))
            splits[split].append(Example(slot, int(domain[target]), history, int(target)))
    names = tuple(f.stem.removeprefix("items_") for f in files)
    return Dataset(spec, names, titles, domain, attrs, raw, users, splits)
