"""train.py's data stage and the app's first page, on synthetic data."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _train(out: Path, dataset: str = "synthetic") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "train.py", "--dataset", dataset, "--out", str(out)], cwd=ROOT, capture_output=True, text=True
    )


def test_train_writes_data_stage_and_manifest(tmp_path):
    out = tmp_path / "run"
    done = _train(out)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["schema_version"] == 1
    assert manifest["config"]["dataset"] == "synthetic"
    assert manifest["dataset"]["describe"]["n_users"] == 120
    (stage,) = manifest["stages"]
    assert stage["name"] == "data" and stage["files"][0]["path"] == "dataset.json"
    assert len(stage["files"][0]["sha256"]) == 64
    assert not list(out.glob(".*.tmp")), "a temp file was left behind"


def test_train_refuses_other_config_and_bad_spec(tmp_path):
    out = tmp_path / "run"
    assert _train(out).returncode == 0
    other = _train(out, "synthetic?n_users=50")
    assert other.returncode == 2 and "another config" in other.stderr
    bad = _train(tmp_path / "bad", "nosuch")
    assert bad.returncode == 2 and "unknown dataset source 'nosuch'" in bad.stderr and "Traceback" not in bad.stderr


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    monkeypatch.setenv("URLLM_ARTIFACTS", str(tmp_path))
    return tmp_path


def _app():
    from streamlit.testing.v1 import AppTest

    # runs.py reads URLLM_ARTIFACTS at import: run the app in a fresh module state.
    sys.modules.pop("urllm.runs", None)
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)


def test_app_without_runs_says_how_to_make_one(app_env):
    at = _app().run()
    assert not at.exception
    assert "make demo" in at.info[0].value


def test_app_shows_run_and_survives_unknown_run_in_url(app_env):
    assert _train(app_env / "tiny").returncode == 0
    at = _app()
    at.query_params["run"] = "nosuch"
    at.run()
    assert not at.exception
    assert "nosuch" in at.warning[0].value
    assert [m.value for m in at.metric][0] == "120"


def test_app_names_a_corrupt_manifest(app_env):
    (app_env / "broken").mkdir()
    (app_env / "broken" / "manifest.json").write_text("{not json")
    at = _app().run()
    assert not at.exception
    assert "manifest.json" in at.error[0].value and "corrupt" in at.error[0].value
