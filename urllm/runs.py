"""The app's one door to runs: find them under artifacts/ and read their files, with a
clear message (naming the file) when something is missing or corrupt. Imports no
training code."""
from __future__ import annotations

import json
import os
from pathlib import Path

# URLLM_ARTIFACTS points the app at another runs folder (tests use a tmp dir).
ARTIFACTS = Path(os.environ.get("URLLM_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts"))


class RunError(Exception):
    pass


def list_runs(artifacts: Path = ARTIFACTS) -> list[str]:
    """Names of the run folders that hold a manifest, newest first."""
    found = [p.parent for p in Path(artifacts).glob("*/manifest.json")]
    return [p.name for p in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)]


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise RunError(f"{path}: file is missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunError(f"{path}: corrupt JSON ({err})") from None


def load_manifest(name: str, artifacts: Path = ARTIFACTS) -> dict:
    manifest = read_json(Path(artifacts) / name / "manifest.json")
    for key in ("schema_version", "config", "dataset", "stages"):
        if key not in manifest:
            raise RunError(f"{Path(artifacts) / name / 'manifest.json'}: no {key!r} field")
    return manifest
