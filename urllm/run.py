"""A run folder and its stages: resume, safety, and the manifest.

Each stage declares the inputs it depends on (config sections, upstream stage keys); their
hash is the stage's key. On rerun a stage is skipped when its key is unchanged and every
file it recorded is still there with the recorded sha256. Files are written atomically
and the manifest is rewritten (atomically) after every stage, with `complete: false`
until the last stage ends, so a run killed at any moment is loadable up to its last
finished stage and plainly marked incomplete.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Callable

from urllm.manifest import file_record, new_manifest, read_manifest, write_manifest


class RunRefused(RuntimeError):
    pass


def stage_key(inputs) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Run:
    def __init__(self, run_dir: Path, config: dict, root: Path, force: bool = False):
        self.dir = Path(run_dir)
        manifest_path = self.dir / "manifest.json"
        if manifest_path.exists() and not force:
            try:
                old = read_manifest(self.dir)
            except (json.JSONDecodeError, OSError) as err:
                raise RunRefused(f"{manifest_path}: unreadable ({err}); pass --force to start this run again") from None
            if old.get("config") != config:
                changed = sorted(k for k in set(config) | set(old.get("config", {})) if config.get(k) != old.get("config", {}).get(k))
                raise RunRefused(
                    f"{self.dir} holds a run with another config (differs in {changed});"
                    " pass --force to replace it, or pick another --out"
                )
            self.manifest = old
        else:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.manifest = new_manifest(config, root)
        self.manifest["complete"] = False
        self.timings: list[tuple[str, float, bool]] = []
        self.save()

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

    def finish(self, metrics: dict) -> None:
        self.manifest["metrics"] = metrics
        self.manifest["complete"] = True
        self.save()

    def timing_table(self) -> str:
        rows = [f"{'stage':<16}{'seconds':>10}  status"]
        rows += [f"{n:<16}{s:>10.1f}  {'reused' if reused else 'built'}" for n, s, reused in self.timings]
        rows.append(f"{'total':<16}{sum(s for _, s, _ in self.timings):>10.1f}")
        return "\n".join(rows)
