"""Fixtures of the data tests; the builders live in data_fixtures.py."""
from __future__ import annotations

from pathlib import Path

import pytest

from data_fixtures import write_movielens, write_urllm_release


@pytest.fixture
def urllm_release(tmp_path) -> Path:
    """A tiny, valid URLLM release folder (see URLLM_* in data_fixtures.py)."""
    return write_urllm_release(tmp_path / "release")


@pytest.fixture
def movielens_root(tmp_path) -> Path:
    return write_movielens(tmp_path / "ml")

