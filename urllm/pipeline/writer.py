"""A run folder and its stages: resume, safety, and the manifest.

Each stage declares the inputs it depends on (config sections, upstream stage keys: the
stage table of urllm/pipeline/stages.py); their hash is the stage's key. On rerun a stage is skipped when its key is unchanged and every
file it recorded is still there with the recorded sha256. Files are written atomically
and the manifest is rewritten (atomically) after every stage, with `complete: false`
until the last stage ends, so a run killed at any moment is loadable up to its last
finished stage and plainly marked incomplete. One process writes a folder at a time
(urllm/pipeline/lock.py).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from urllm.pipeline.lock import RunLock, RunLocked, holder, holder_text
from urllm.pipeline.manifest import file_record, new_manifest, read_manifest, write_manifest


class RunRefused(RuntimeError):
    pass


def stage_key(inputs) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _writable_folder(run_dir: Path) -> None:
    """RunRefused unless `run_dir` is a folder, or can be made one, that this process may write."""
    try:
        if run_dir.exists() and not run_dir.is_dir():
            raise RunRefused(f"--out {run_dir}: is a file, expected a run folder")
        parent = next(p for p in [run_dir, *run_dir.parents] if p.exists())
    except OSError as err:  # e.g. a name too long for the filesystem
        raise RunRefused(f"--out {run_dir}: {err.strerror or err}") from None
    if not parent.is_dir():
        raise RunRefused(f"--out {run_dir}: {parent} is a file, expected a folder")
    if os.statvfs(parent).f_flag & os.ST_RDONLY:  # checked first: root passes os.access there too
        raise RunRefused(f"--out {run_dir}: {parent} is on a read-only filesystem")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RunRefused(f"--out {run_dir}: {parent} is not writable by this user")
    longest = max((len(os.fsencode(part)) for part in run_dir.parts), default=0)
    if longest > os.pathconf(parent, "PC_NAME_MAX"):
        raise RunRefused(f"--out {run_dir}: File name too long ({longest} bytes in one name; "
                         f"at most {os.pathconf(parent, 'PC_NAME_MAX')} here)")


def _with_new_fields(recorded, config):
    """`recorded` (a run's config) with the fields it lacks taken from `config`: a field this
    version added leaves an older run resumable instead of refused as another config (the
    stages that read the field have new keys, so they rebuild; the others are reused)."""
    if not isinstance(recorded, dict) or not isinstance(config, dict):
        return recorded
    merged = {k: _with_new_fields(recorded[k], v) if k in recorded else v for k, v in config.items()}
    return merged | {k: v for k, v in recorded.items() if k not in config}


def _resumable_manifest(run_dir: Path, config: dict, force: bool) -> dict | None:
    manifest_path = run_dir / "manifest.json"
    if force or not manifest_path.exists():
        return None
    try:
        old = read_manifest(run_dir)
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as err:
        raise RunRefused(f"{manifest_path}: unreadable ({err}); pass --force to start this run again") from None
    if not isinstance(old, dict) or not isinstance(old.get("stages"), list):
        raise RunRefused(f"{manifest_path}: not a run manifest; pass --force to start this run again")
    if _with_new_fields(old.get("config"), config) != config:
        recorded = old.get("config") if isinstance(old.get("config"), dict) else {}
        changed = sorted(k for k in set(config) | set(recorded) if config.get(k) != recorded.get(k))
        raise RunRefused(f"{run_dir} holds a run with another config (differs in {changed});"
                         " pass --force to replace it, or pick another --out")
    return old


class Run:
    """A run folder being written by this process (it holds the folder's lock until
    `close`, or the process's end, whichever comes first).

        Run.check(out, config)           # read-only: RunRefused now, before any data is loaded
        with Run(out, config, root) as run:
            run.stage(...)
    """

    def __init__(self, run_dir: Path, config: dict, root: Path, force: bool = False):
        self.dir = Path(run_dir)
        Run.check(self.dir, config, force)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.lock = RunLock(self.dir).acquire()
        except RunLocked as err:
            raise RunRefused(str(err)) from None
        except OSError as err:
            raise RunRefused(f"--out {self.dir}: cannot create the run folder ({err.strerror or err})") from None
        if self.lock.took_over:
            print(f"[run] took over the lock of a process that is gone ({self.lock.took_over})", flush=True)
        # read again under the lock: another writer may have finished in between
        self.manifest = _resumable_manifest(self.dir, config, force) or new_manifest(config, root)
        self.manifest["config"] = config  # a resumed older run records the fields this version added
        self.manifest["complete"] = False
        self.timings: list[tuple[str, float, bool]] = []
        try:
            self.save()
        except OSError as err:
            self.close()
            raise RunRefused(f"--out {self.dir}: cannot write the manifest ({err.strerror or err})") from None

    @staticmethod
    def check(run_dir: Path, config: dict, force: bool = False) -> dict | None:
        """The manifest of the run in `run_dir` to resume (None: a new run), or RunRefused:
        not a writable folder, being written by another live process, or holding a run
        with another config (unless force) or an unreadable manifest. Writes nothing."""
        run_dir = Path(run_dir)
        _writable_folder(run_dir)
        live = holder(run_dir) if run_dir.is_dir() else None
        if live is not None:
            raise RunRefused(f"{run_dir} is being written by {holder_text(live)}; wait for it to end, or pick another --out")
        return _resumable_manifest(run_dir, config, force)

    def close(self) -> None:
        self.lock.release()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def save(self) -> None:
        write_manifest(self.dir, self.manifest)

    def _record(self, name: str) -> dict | None:
        return next((s for s in self.manifest["stages"] if s["name"] == name), None)

    def is_fresh(self, name: str, key: str) -> bool:
        rec = self._record(name)
        if rec is None or rec.get("key") != key:
            return False
        for f in rec["files"]:
            path = self.dir / f["path"]
            if not path.is_file() or path.stat().st_size != f["bytes"] or file_record(path, self.dir)["sha256"] != f["sha256"]:
                return False
        return True

    def stage(self, name: str, inputs, fn: Callable[[Path], dict]) -> dict:
        """Run `fn(run_dir)` unless its last result is fresh. `fn` returns
        {"files": [paths], "summary": {...}} (files written atomically). Returns the record."""
        key = stage_key(inputs)
        if self.is_fresh(name, key):
            rec = self._record(name)
            self.timings.append((name, 0.0, True))
            print(f"[{name}] unchanged, reused ({rec['seconds']:.1f} s when built)", flush=True)
            return rec
        start = time.perf_counter()
        result = fn(self.dir)
        seconds = time.perf_counter() - start
        rec = {"name": name, "key": key, "seconds": round(seconds, 3),
               "files": [file_record(Path(p), self.dir) for p in result.get("files", [])],
               "summary": result.get("summary", {})}
        self.manifest["stages"] = [s for s in self.manifest["stages"] if s["name"] != name] + [rec]
        self.save()
        self.timings.append((name, seconds, False))
        line = ", ".join(f"{k} {v}" for k, v in rec["summary"].items() if not isinstance(v, (dict, list)))
        print(f"[{name}] {seconds:.1f} s" + (f": {line}" if line else ""), flush=True)
        return rec

    def record_dataset(self, spec: str, describe: dict) -> None:
        """The manifest's "dataset": the spec and the dataset in figures (Dataset.describe)."""
        self.manifest["dataset"] = {"spec": spec, "describe": describe}
        self.save()

    def finish(self, metrics: dict) -> None:
        self.manifest["metrics"] = metrics
        self.manifest["complete"] = True
        self.save()

    def timing_table(self) -> str:
        rows = [f"{'stage':<16}{'seconds':>10}  status"]
        rows += [f"{n:<16}{s:>10.1f}  {'reused' if reused else 'built'}" for n, s, reused in self.timings]
        rows.append(f"{'total':<16}{sum(s for _, s, _ in self.timings):>10.1f}")
        return "\n".join(rows)
