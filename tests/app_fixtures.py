"""Helpers for the app's AppTest tests (streamlit.testing.v1)."""
from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_page(page: str, monkeypatch, artifacts: Path, timeout: float = 60, **params):
    """Run `page` ("app.py" or "pages/N_Name.py") against `artifacts` with URL query
    params; returns the finished AppTest."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("URLLM_ARTIFACTS", str(artifacts))
    at = AppTest.from_file(str(ROOT / page), default_timeout=timeout)
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def copy_run(src_artifacts: Path, dst_artifacts: Path, name: str = "tiny") -> Path:
    """A private copy of a run to damage in a test; returns the new artifacts folder."""
    dst_artifacts.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src_artifacts / name, dst_artifacts / name)
    return dst_artifacts


def texts(at) -> str:
    """Every markdown, caption, header, info, warning and error text of a run, joined."""
    parts = []
    for kind in ("markdown", "caption", "title", "header", "subheader", "info", "warning", "error", "success"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def first_test_user(artifacts: Path, name: str = "tiny") -> tuple[str, str]:
    """(user id, domain name) of the run's first test line."""
    from urllm.runs import RunData

    run = RunData.open(name, artifacts)
    line = run.test_lines[0]
    return run.user_ids[line.user], run.domains[line.domain]
