"""One writer per run folder: an exclusive lock on `<run>/.lock`, holding the writer's
PID and host.

    with RunLock(run_dir):     # RunLocked at once if another live process holds it
        ...                    # write the run

The lock is the kernel's (fcntl.flock on the open file), so it is taken atomically and
released on every exit path, kill -9 included: a lock file left by a dead process holds
no lock and is simply taken over (`took_over` names the old holder). The file itself
stays; its content names the last holder, for the message a second writer gets.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

LOCK_NAME = ".lock"


class RunLocked(RuntimeError):
    pass


def holder_text(info: dict) -> str:
    if not info:
        return "another process (its PID is not written yet)"
    return f"PID {info.get('pid')} on host {info.get('host')} (since {info.get('started')})"


def _read_holder(fd: int) -> dict:
    """The holder info written in an open lock file ({} when empty or unreadable)."""
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        info = json.loads(os.read(fd, 4096) or b"{}")
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


class RunLock:
    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None
        self.took_over: dict | None = None  # the previous holder's info when its process had died

    def acquire(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunLocked(f"{self.path.parent} is being written by {holder_text(holder)}; wait for it to end, "
                            "or pick another --out") from None
        except BaseException:
            os.close(fd)
            raise
        self.took_over = _read_holder(fd) or None  # whoever wrote it is gone: flock would have refused otherwise
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # no holder named once released
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def holder(run_dir: Path) -> dict | None:
    """The live holder of a run folder's lock, or None when no process holds it (read-only:
    tries a shared lock and lets it go)."""
    path = Path(run_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
