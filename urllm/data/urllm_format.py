"""Loader for the URLLM release format (`urllm:DIR`), e.g. ../shared/data/amazon-art-office.

DIR holds two `items_<domain>.csv` files (header `idBefore,item_title,idAfter,item_attribute`;
`idAfter` is the global item id), `users.txt` (`reviewerID<TAB>user_index`, optional) and
`train.txt`, `valid.txt`, `test.txt` with lines
`user_index<TAB>target_pos<TAB>item|pos|pos<TAB>...`: the last item is the target, the rest
the history; both positions of an item are its place in the line (0, 1, 2, ...). The
release's own split is kept exactly; Dataset.validate then checks its promises (no user in
two splits, a user's lines share one history, no line twice), naming file:line.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from urllm.data.checks import MAX_COUNT, check_dir, check_names
from urllm.data.dataset import SPLITS, Dataset, Example, User
from urllm.data.errors import DataError, cannot_read, shown, where

ITEM_HEADER = ["idBefore", "item_title", "idAfter", "item_attribute"]
_INTEGER = re.compile(r"-?[0-9]+")  # what the release writes; int() would also take ' 7', '1_0', '+7', '٧'
MAX_DIGITS = 18  # every id and position then fits numpy's int64 (the release's longest has 5)


@dataclass
class UrllmConfig:
    """Options of `urllm:DIR?key=value`."""

    domains: str = ""  # "art,office": the two `items_<name>.csv` files, A first; default: both files, A = lower ids

    def validate(self) -> None:
        """Every option well formed (DataError naming the field); called by parse_spec."""
        if self.domains:
            check_names("domains", self.domains, 2, "two names, e.g. 'art,office'")


def check_arg(arg: str, spec: str) -> None:
    check_dir(arg, "a URLLM release folder, e.g. urllm:../shared/data/amazon-art-office")


def _read_lines(path: Path) -> list[str]:
    """The file's lines, split on '\\n' only, so that line numbers are what an editor shows."""
    try:
        if not path.is_file():
            reason = "is a directory" if path.is_dir() else "file not found"
            raise DataError(f"{shown(path)}: {reason} (expected a file of the URLLM release folder)")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{shown(path)}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise cannot_read(path, err, "a readable file of the URLLM release folder") from None
    if not text.strip():
        raise DataError(f"{shown(path)}: file is empty")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    return [line.removesuffix("\r") for line in lines]


def _int(value: str, path: Path, line: int, what: str) -> int:
    if not _INTEGER.fullmatch(value):
        raise DataError(f"{where(path, line)}: expected an integer {what}, got {shown(value)!r}")
    digits = len(value.lstrip("-"))
    if digits > MAX_DIGITS:
        raise DataError(f"{where(path, line)}: {what} {shown(value)} has {digits} digits; expected at most {MAX_DIGITS}")
    return int(value)


def _read_items(path: Path) -> list[tuple[int, str, str, str, int]]:
    """Rows of (global id, title, attribute words, original id, line number)."""
    lines = _read_lines(path)
    rows = []
    reader = csv.reader(lines)
    try:
        for fields in reader:
            n = reader.line_num  # a quoted field may span lines
            if n == 1:
                if fields != ITEM_HEADER:
                    raise DataError(f"{where(path, 1)}: expected header {','.join(ITEM_HEADER)}, got {shown(lines[0])!r}")
                continue
            if len(fields) != 4:
                raise DataError(f"{where(path, n)}: expected 4 comma-separated fields, got {len(fields)}")
            id_before, title, id_after, attrs = fields
            if not title.strip():
                raise DataError(f"{where(path, n)}: item {shown(id_after)!r} has no title")
            rows.append((_int(id_after, path, n, "item id (idAfter)"), title.strip(), attrs, id_before, n))
    except csv.Error as err:
        raise DataError(f"{where(path, reader.line_num)}: not CSV ({err}); expected {','.join(ITEM_HEADER)} rows") from None
    if not rows:
        raise DataError(f"{shown(path)}: no item rows after the header")
    return rows


def _item_files(root: Path, cfg: UrllmConfig) -> list[Path]:
    if cfg.domains:
        return [root / f"items_{name.strip()}.csv" for name in cfg.domains.split(",")]
    files = sorted(root.glob("items_*.csv"))
    if len(files) != 2:
        raise DataError(f"{shown(root)}: expected exactly two items_<domain>.csv files, found {[f.name for f in files]}")
    return files


def _read_sequences(path: Path, n_items: int, user_ids: dict[int, str]) -> list[tuple[int, int, np.ndarray, int]]:
    """Rows of (line number, user index, history ids, target id)."""
    rows = []
    for n, line in enumerate(_read_lines(path), start=1):
        fields = [f for f in line.split("\t") if f != ""]
        if not fields:
            continue  # a blank line
        if len(fields) < 3:
            raise DataError(
                f"{where(path, n)}: expected user_index, target_pos and at least one item|pos|pos,"
                f" got {len(fields)} field(s) (truncated line?)"
            )
        user = _int(fields[0], path, n, "user index")
        if not 0 <= user <= MAX_COUNT:
            raise DataError(f"{where(path, n)}: user index {user} outside 0..{MAX_COUNT:,}")
        if user_ids and user not in user_ids:
            raise DataError(f"{where(path, n)}: user index {user} is not in users.txt (expected every user listed there)")
        target_pos = _int(fields[1], path, n, "target position")
        items = []
        for k, token in enumerate(fields[2:]):
            parts = token.split("|")
            if len(parts) != 3:
                raise DataError(f"{where(path, n)}: expected item|pos|pos, got {shown(token)!r}")
            item = _int(parts[0], path, n, "item id")
            if not 0 <= item < n_items:
                raise DataError(f"{where(path, n)}: item id {item} is in no items_*.csv (expected 0..{n_items - 1})")
            positions = [_int(p, path, n, "position") for p in parts[1:]]
            if positions != [k, k]:
                raise DataError(
                    f"{where(path, n)}: item {item} has positions {parts[1]}|{parts[2]}, expected {k}|{k} (its place in the line)"
                )
            items.append(item)
        if target_pos != len(items) - 1:
            raise DataError(
                f"{where(path, n)}: target_pos {target_pos} is not the last position {len(items) - 1}"
            )
        rows.append((n, user, np.array(items[:-1], dtype=np.int64), items[-1]))
    if not rows:
        raise DataError(f"{shown(path)}: no sequence lines")
    return rows


def _read_user_ids(path: Path) -> dict[int, str]:
    """user index -> reviewerID, from users.txt when the release has one."""
    try:
        if not path.exists():
            return {}
    except OSError as err:
        raise cannot_read(path, err, "users.txt of the URLLM release folder") from None
    ids: dict[int, str] = {}
    line_of: dict[str, int] = {}  # reviewerID -> its line, to name both lines of a repeat
    for n, line in enumerate(_read_lines(path), start=1):
        fields = line.split("\t")
        if len(fields) != 2 or not fields[0].strip():
            raise DataError(f"{where(path, n)}: expected reviewerID<TAB>user_index, got {shown(line)!r}")
        raw, index = fields[0].strip(), _int(fields[1].strip(), path, n, "user index")
        if not 0 <= index <= MAX_COUNT:
            raise DataError(f"{where(path, n)}: user index {index} outside 0..{MAX_COUNT:,}")
        if index in ids:
            raise DataError(f"{where(path, n)}: user index {index} listed twice (expected one reviewerID per index)")
        if raw in line_of:
            raise DataError(f"{where(path, n)}: reviewerID {raw!r} listed twice (also at line {line_of[raw]})")
        ids[index], line_of[raw] = raw, n
    return ids


def _known_sequence(lines: list[tuple[np.ndarray, int]]) -> np.ndarray:
    """A user's known items: their longest history, then the targets that follow it (the
    release gives both lines of a user the same history and different targets)."""
    longest = max(len(history) for history, _ in lines)
    history = next(h for h, _ in lines if len(h) == longest)
    return np.append(history, [t for h, t in lines if len(h) == longest]).astype(np.int64)


def load_urllm(arg: str, cfg: UrllmConfig, spec: str) -> Dataset:
    root = Path(arg)
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
        for gid, title, attr, id_before, line in rows:
            if not 0 <= gid < n_items:
                raise DataError(f"{where(path, line)}: idAfter {gid} outside 0..{n_items - 1} (ids must be dense)")
            if titles[gid] is not None:
                raise DataError(f"{where(path, line)}: idAfter {gid} appears twice")
            titles[gid], domain[gid], attrs[gid] = title, d, tuple(attr.split())
            raw[gid] = f"{path.stem.removeprefix('items_')}:{id_before}"

    user_ids = _read_user_ids(root / "users.txt")
    slot_of: dict[int, int] = {}  # user index -> position in Dataset.users (order of first line)
    lines_of: dict[int, list[tuple[np.ndarray, int]]] = {}  # user index -> (history, target) per line
    splits: dict[str, list[Example]] = {}
    for split in SPLITS:
        path = root / f"{split}.txt"
        splits[split] = []
        for line, user, history, target in _read_sequences(path, n_items, user_ids):
            slot = slot_of.setdefault(user, len(slot_of))
            lines_of.setdefault(user, []).append((history, target))
            splits[split].append(Example(slot, int(domain[target]), history, int(target), where(path, line)))
    users = []
    for user, lines in lines_of.items():  # in slot order: both dicts gain a user at its first line
        items = _known_sequence(lines)
        users.append(User(user_ids.get(user, str(user)), items, np.arange(len(items), dtype=np.int64)))
    names = tuple(f.stem.removeprefix("items_") for f in files)
    return Dataset(spec, names, titles, domain, attrs, raw, users, splits)
