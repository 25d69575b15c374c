"""Shared fixtures: the data builders live in data_fixtures.py; `tiny_artifacts` is one
tiny-profile run made once per test session for the app's tests."""
from __future__ import annotations

import subprocess
import sys
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



ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors gain nothing from threads, and on a loaded 2-core machine OpenMP's waits
    made such test files 5x slower; the previous setting is restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_artifacts(tmp_path_factory) -> Path:
    """An artifacts folder holding one complete run, `tiny` (train.py --profile tiny, ~30 s).
    Read-only: a test that damages a run copies it first. URLLM_TEST_ARTIFACTS=DIR reuses a
    folder already holding DIR/tiny (made by this tree's train.py) while iterating on app
    tests; CI leaves it unset and builds the run."""
    import os

    reuse = os.environ.get("URLLM_TEST_ARTIFACTS")
    if reuse:
        assert (Path(reuse) / "tiny" / "manifest.json").is_file(), f"URLLM_TEST_ARTIFACTS={reuse} holds no tiny run"
        return Path(reuse)
    artifacts = tmp_path_factory.mktemp("artifacts")
    done = subprocess.run([sys.executable, "train.py", "--profile", "tiny", "--out", str(artifacts / "tiny")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return artifacts


# The LLM tests' shared trio (a module may define its own `ds` instead): a small synthetic
# dataset, a tokenizer trained on its titles, a tiny random LM over that tokenizer.
@pytest.fixture(scope="module")
def ds():
    from urllm.data import load_dataset

    return load_dataset("synthetic?n_users=60")


@pytest.fixture(scope="module")
def tok(ds):
    from llm_fixtures import tiny_tokenizer

    return tiny_tokenizer(ds.item_titles + ["You recommend products Similar user bought This user Answer"])


@pytest.fixture(scope="module")
def lm(tok):
    from llm_fixtures import tiny_lm

    return tiny_lm(tok)
