"""Atomic writes of files and folders: a reader (the app, a resumed run) sees the old
version or the new one, never half of one.

A file is written to a temp file in the same folder, fsynced, then renamed over the old
one (`atomic_file` for writers that want a path, e.g. faiss.write_index; the
`atomic_write_*` helpers for bytes, text, JSON and tensors). A folder is written into a
temp folder beside it, then swapped in (`atomic_folder`). Temp names start with a dot, so
listings of run folders skip them.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """A temp path beside `path` for the block to write; on a clean exit it is fsynced and
    renamed onto `path`, on an error removed (`path` keeps its old content)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_save_tensors(path: str | Path, tensors: dict, metadata: dict[str, str] | None = None) -> None:
    """safetensors file written atomically (no pickle, loadable without code objects)."""
    from safetensors.torch import save

    atomic_write_bytes(path, save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata))


# ------------------------------------------------------------------ folders


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(path: Path) -> None:
    """Delete the temp folders of `path` (`.NAME.partial-PID-*`, `.NAME.old-PID`) left by a
    process that no longer runs (killed outright, so its cleanup never ran)."""
    for tmp in path.parent.glob(f".{path.name}.*-*"):
        m = re.fullmatch(rf"\.{re.escape(path.name)}\.(partial|old)-(\d+)(-.*)?", tmp.name)
        if m and tmp.is_dir() and not _pid_alive(int(m.group(2))):
            shutil.rmtree(tmp, ignore_errors=True)


def _make_readable(folder: Path) -> None:
    """The modes a plain mkdir and open give under the usual umask (mkdtemp and mkstemp
    make private ones), so another account serving the app can read the folder."""
    for f in folder.iterdir():
        if f.is_file():
            f.chmod(0o644)
    folder.chmod(0o755)


def _swap_in(tmp: Path, path: Path, concurrent_ok: Callable[[Path], bool] | None) -> None:
    """Rename `tmp` to `path`; a folder already there is moved aside first, then removed."""
    old = None
    if path.exists():
        old = path.parent / f".{path.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.rename(path, old)
    try:
        os.rename(tmp, path)
    except OSError:
        taken = path.exists()  # another writer swapped its folder in between our renames
        if old is not None and not taken:
            os.rename(old, path)  # put the previous folder back
            old = None
        if not (taken and concurrent_ok is not None and concurrent_ok(path)):
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # the other writer's folder is kept
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_folder(path: str | Path, concurrent_ok: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """A fresh temp folder beside `path` for the block to fill; on a clean exit it replaces
    `path` (the old folder, if any, is removed), on an error it is removed and `path` is
    left as it was.

    A process killed inside the block leaves only its `.NAME.partial-PID-*` folder, which the
    next atomic_folder(path) deletes. `concurrent_ok(path)`: when another process swapped
    in its own folder between our two renames and this accepts it (two conversions of the
    same file), that folder is kept and ours dropped instead of raising.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-{os.getpid()}-", dir=path.parent))
    try:
        yield tmp
        _make_readable(tmp)
        _swap_in(tmp, path, concurrent_ok)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
