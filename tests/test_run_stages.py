"""Stage bookkeeping of urllm/pipeline/writer.py: reuse, invalidation, and a failing write."""
import errno
import json

import pytest

import train
from urllm.io import atomic_write_json
from urllm.pipeline.writer import Run, RunRefused


def writer(name, payload):
    def build(run_dir):
        atomic_write_json(run_dir / f"{name}.json", payload)
        return {"files": [run_dir / f"{name}.json"], "summary": {"n": len(payload)}}

    return build


def test_stage_is_reused_until_inputs_or_files_change(tmp_path):
    run = Run(tmp_path / "r", {"a": 1}, tmp_path)
    calls = []

    def build(run_dir):
        calls.append(1)
        return writer("x", {"v": 1})(run_dir)

    run.stage("x", {"k": 1}, build)
    run.stage("x", {"k": 1}, build)
    assert len(calls) == 1
    run.stage("x", {"k": 2}, build)  # inputs changed
    assert len(calls) == 2
    (tmp_path / "r" / "x.json").write_text("{}")  # file edited behind the run's back
    run.stage("x", {"k": 2}, build)
    assert len(calls) == 3


def test_disk_full_mid_stage_leaves_a_loadable_incomplete_run(tmp_path):
    run = Run(tmp_path / "r", {"a": 1}, tmp_path)
    run.stage("first", {}, writer("first", {"ok": True}))

    def full(run_dir):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError):
        run.stage("second", {}, full)
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["complete"] is False
    assert [s["name"] for s in manifest["stages"]] == ["first"]


def test_train_reports_a_write_failure_and_where(tmp_path, monkeypatch, capsys):
    import urllm.pipeline.stages

    def failing(cfg, run, ds):
        raise OSError(errno.EACCES, "Permission denied", str(run.dir / "data.json"))

    monkeypatch.setattr(urllm.pipeline.stages, "run_pipeline", failing)
    code = train.main(["--profile", "tiny", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "Permission denied" in err and str(tmp_path / "r") in err and "incomplete" in err
    assert json.loads((tmp_path / "r" / "manifest.json").read_text())["complete"] is False


def test_other_config_refused_and_corrupt_manifest_named(tmp_path):
    Run(tmp_path / "r", {"a": 1}, tmp_path).close()
    with pytest.raises(RunRefused, match="differs in \\['a'\\]"):
        Run(tmp_path / "r", {"a": 2}, tmp_path)
    (tmp_path / "r" / "manifest.json").write_text("{broken")
    with pytest.raises(RunRefused, match="manifest.json: unreadable"):
        Run(tmp_path / "r", {"a": 1}, tmp_path)
    (tmp_path / "r" / "manifest.json").write_text('{"stages": 3}')
    with pytest.raises(RunRefused, match="manifest.json: not a run manifest"):
        Run.check(tmp_path / "r", {"a": 1})
    with Run(tmp_path / "r", {"a": 1}, tmp_path, force=True) as run:
        assert run.manifest["stages"] == []


def test_a_run_of_an_older_version_resumes_when_only_new_fields_differ(tmp_path):
    """A config field added by a later version does not lock an older run
    out: it resumes, its untouched stages reused, and the manifest records the new field; a
    changed or removed field is still another config."""
    old = {"a": 1, "llm": {"rerank": {"weights": [0.5]}}}
    with Run(tmp_path / "r", old, tmp_path) as run:
        run.stage("x", {"k": 1}, writer("x", {"v": 1}))
    new = {"a": 1, "llm": {"rerank": {"weights": [0.5], "list_candidates": False}}}
    with Run(tmp_path / "r", new, tmp_path) as run:
        assert run.stage("x", {"k": 1}, writer("x", {"v": 2})) is not None
        assert json.loads((tmp_path / "r" / "x.json").read_text()) == {"v": 1}  # reused, not rebuilt
        assert run.manifest["config"] == new
    with pytest.raises(RunRefused, match="differs in \\['llm'\\]"):
        Run(tmp_path / "r", {"a": 1, "llm": {"rerank": {"weights": [0.7], "list_candidates": False}}}, tmp_path)
    with pytest.raises(RunRefused, match="differs in \\['llm'\\]"):
        Run(tmp_path / "r", {"a": 1, "llm": {"rerank": {"list_candidates": False}}}, tmp_path)
