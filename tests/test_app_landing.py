"""The app's landing page on a minimal run: runs listed, URL fallback, corrupt manifest."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _write_run(artifacts: Path, name: str) -> None:
    """A minimal run folder: the manifest the landing page reads."""
    from urllm.data import load_dataset
    from urllm.manifest import new_manifest, write_manifest

    manifest = new_manifest({"dataset": "synthetic"}, ROOT)
    manifest["dataset"] = {"spec": "synthetic", "describe": load_dataset("synthetic").describe()}
    manifest["stages"] = [{"name": "data", "seconds": 0.1, "files": []}]
    (artifacts / name).mkdir(parents=True)
    write_manifest(artifacts / name, manifest)


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
    _write_run(app_env, "tiny")
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
