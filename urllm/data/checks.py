"""Checks of dataset options and folders, shared by the sources' config dataclasses
(`validate()`) and `parse_spec`. They read no data, so a bad spec is refused before any
stage runs; each failure is one DataError line naming the field, the value and what was
expected."""
from __future__ import annotations

import math
import os
from pathlib import Path

from urllm.data.errors import DataError, shown

MAX_COUNT = 1_000_000_000  # no real dataset needs a larger count; beyond it a value is a typo
MAX_SEED = 2**32 - 1  # numpy seeds are non-negative; 32 bits is what everyone writes
MAX_UNIX_TIME = 253_402_300_799  # 9999-12-31 23:59:59 in seconds: later is not a real review time


def check_int(name: str, value, lo: int, hi: int = MAX_COUNT, what: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise DataError(f"{name}={value!r}: expected an integer in {lo:,}..{hi:,}{f' ({what})' if what else ''}")


def check_float(name: str, value, lo: float = -math.inf, hi: float = math.inf, what: str = "") -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and lo <= value <= hi
    if not ok:
        expected = f"a number in [{lo:g}, {hi:g}]" if math.isfinite(lo) and math.isfinite(hi) else "a finite number"
        raise DataError(f"{name}={value!r}: expected {expected}{f' ({what})' if what else ''}")


def check_split_fractions(valid_frac: float, test_frac: float) -> None:
    """Shares of users in valid and test: each in [0, 1), together below 1 (train keeps some)."""
    for name, frac in (("valid_frac", valid_frac), ("test_frac", test_frac)):
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0.0 <= frac < 1.0:
            raise DataError(f"{name}={frac!r}: expected a fraction in [0, 1)")
    if valid_frac + test_frac >= 1.0:
        raise DataError(f"valid_frac + test_frac = {valid_frac + test_frac:g}: expected < 1 (train needs users)")


def check_names(name: str, value: str, count: int | None, expected: str) -> list[str]:
    """Comma-separated names (domains, categories, genres): none empty, none repeated, and
    `count` of them when given. Names become file names, so no path separators."""
    names = [n.strip() for n in value.split(",")]
    bad = (count is not None and len(names) != count) or not all(names) or len(set(names)) != len(names)
    if bad or any(c in n for n in names for c in "/\\\0"):
        raise DataError(f"{name}={shown(value)!r}: expected {expected} (comma-separated, distinct, non-empty, no '/')")
    return names


def check_dir(text: str, what: str) -> Path:
    """`text` names an existing folder; else one line saying what is there instead."""
    if not text:
        raise DataError(f"no folder given: expected {what}")
    path = Path(text)
    try:
        if path.is_dir():
            return path
        reason = "it is a file" if path.exists() else "nothing exists there"
    except (OSError, ValueError) as err:  # ENAMETOOLONG, EACCES on a parent, an embedded NUL ...
        reason = getattr(err, "strerror", None) or str(err)
    raise DataError(f"{shown(os.fspath(path))}: not a directory ({reason}); expected {what}")
