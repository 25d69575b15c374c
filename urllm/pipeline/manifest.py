"""The run manifest (`artifacts/NAME/manifest.json`): what a run is and what it holds.
Written atomically after every stage so an interrupted run is still readable."""
from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from urllm.io import atomic_write_json

SCHEMA_VERSION = 1
KEY_PACKAGES = ["torch", "transformers", "peft", "torch-geometric", "faiss-cpu", "streamlit", "numpy", "pandas"]


def git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in KEY_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def file_record(path: Path, run_dir: Path) -> dict:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(path.relative_to(run_dir)), "sha256": digest.hexdigest(), "bytes": path.stat().st_size}


def new_manifest(config: dict, root: Path) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(root),
        "complete": False,
        "config": config,
        "dataset": {},
        "stages": [],
        "versions": versions(),
        "metrics": {},
    }


def read_manifest(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "manifest.json").read_text(encoding="utf-8"))


def write_manifest(run_dir: Path, manifest: dict) -> None:
    atomic_write_json(Path(run_dir) / "manifest.json", manifest)
