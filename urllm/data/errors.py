"""The error every loader raises for bad input: one message naming the file, the line
and what was expected. The CLI prints it without a traceback."""
from __future__ import annotations

import os

MAX_SHOWN = 120  # a longer path is shortened in messages, so that the message stays one readable line


class DataError(ValueError):
    pass


def shown(path) -> str:
    """A path as a message shows it: control characters escaped (the message stays one
    line) and an over-long path shortened in the middle."""
    text = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    if len(text) > MAX_SHOWN:
        text = f"{text[:60]}...{text[-40:]} ({len(text)} characters)"
    return text


def where(path, line: int | None = None) -> str:
    """'path:line' (or just 'path') for the start of an error message."""
    return f"{shown(path)}:{line}" if line is not None else shown(path)


def cannot_read(path, err: OSError, expected: str) -> DataError:
    """The DataError for an OSError (permission denied, a folder where a file belongs, a
    name too long, ...) met while opening or reading `path`."""
    reason = err.strerror or str(err) or type(err).__name__
    return DataError(f"{shown(path)}: cannot read it ({reason}); expected {expected}")
