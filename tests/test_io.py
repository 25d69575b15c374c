"""Atomic writes (urllm/io.py): a reader sees the old file or folder or the new one, and no
temp is left behind, whether the writer finishes, fails, or loses a race."""
import json
import os
from pathlib import Path

import pytest

from urllm import io
from urllm.io import atomic_file, atomic_folder, atomic_write_json


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def old_folder(tmp_path: Path) -> Path:
    out = tmp_path / "adapter"
    out.mkdir()
    (out / "weights.bin").write_text("old")
    return out


# ---------------------------------------------------------------- files


def test_atomic_file_replaces_on_success_and_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "sub" / "index.faiss"
    atomic_write_json(path, {"v": 1})
    assert json.loads(path.read_text()) == {"v": 1}

    with pytest.raises(RuntimeError):
        with atomic_file(path) as tmp:
            tmp.write_text("half written")  # e.g. faiss.write_index(index, str(tmp)) failing midway
            raise RuntimeError("disk full")
    assert json.loads(path.read_text()) == {"v": 1}
    assert listing(path.parent) == ["index.faiss"]

    with atomic_file(path) as tmp:
        assert tmp.parent == path.parent and tmp.name.startswith(".")  # same folder: the rename is atomic
        with open(str(tmp), "w") as f:  # a writer that takes a path string
            f.write("new")
    assert path.read_text() == "new" and listing(path.parent) == ["index.faiss"]


# ---------------------------------------------------------------- folders


def test_a_failure_inside_the_folder_block_leaves_the_old_folder_and_no_temp(tmp_path):
    out = old_folder(tmp_path)
    for error in (RuntimeError("save_pretrained failed"), KeyboardInterrupt()):
        with pytest.raises(type(error)):
            with atomic_folder(out) as tmp:
                (tmp / "weights.bin").write_text("new, half written")
                raise error
        assert listing(out) == ["weights.bin"] and (out / "weights.bin").read_text() == "old"
        assert listing(tmp_path) == ["adapter"]


def test_a_completed_folder_block_replaces_the_old_folder(tmp_path):
    out = old_folder(tmp_path)
    with atomic_folder(out) as tmp:
        assert tmp.parent == tmp_path and tmp != out
        assert (out / "weights.bin").read_text() == "old"  # readers still see the old folder meanwhile
        (tmp / "config.json").write_text("{}")
        atomic_write_json(tmp / "training.json", {"curve": []})  # mkstemp makes it private (0600)
    assert listing(out) == ["config.json", "training.json"]  # nothing of the old folder is kept
    assert listing(tmp_path) == ["adapter"]
    assert out.stat().st_mode & 0o777 == 0o755 and (out / "training.json").stat().st_mode & 0o777 == 0o644
    with atomic_folder(tmp_path / "fresh") as tmp:  # no old folder: the parent is created too
        (tmp / "a").write_text("1")
    assert listing(tmp_path / "fresh") == ["a"]


def test_temps_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    out = old_folder(tmp_path)
    dead_pid = 2**22 + 12345  # above the default pid_max, so no such process
    left = [tmp_path / f".adapter.partial-{dead_pid}-abc", tmp_path / f".adapter.old-{dead_pid}"]
    running = tmp_path / f".adapter.partial-{os.getpid()}-xyz"  # a live writer's temp is not touched
    for p in left + [running]:
        p.mkdir()
    with atomic_folder(out) as tmp:
        (tmp / "weights.bin").write_text("new")
    assert listing(tmp_path) == sorted(["adapter", running.name])


def test_a_failed_swap_puts_the_old_folder_back(tmp_path, monkeypatch):
    out = old_folder(tmp_path)
    rename = os.rename

    def failing_rename(src, dst):
        if Path(src).name.startswith(".adapter.partial-"):
            raise OSError("rename failed")
        rename(src, dst)

    monkeypatch.setattr(io.os, "rename", failing_rename)
    with pytest.raises(OSError, match="rename failed"):
        with atomic_folder(out) as tmp:
            (tmp / "weights.bin").write_text("new")
    assert (out / "weights.bin").read_text() == "old" and listing(tmp_path) == ["adapter"]


@pytest.mark.parametrize("accept", [True, False])
def test_a_concurrent_writer_that_swapped_in_first(tmp_path, monkeypatch, accept):
    out = old_folder(tmp_path)
    rename = os.rename

    def other_writer_first(src, dst):
        if Path(src).name.startswith(".adapter.partial-"):  # between our two renames
            Path(dst).mkdir()
            (Path(dst) / "weights.bin").write_text("other")
            raise OSError("Directory not empty")
        rename(src, dst)

    monkeypatch.setattr(io.os, "rename", other_writer_first)

    def write():
        with atomic_folder(out, concurrent_ok=lambda p: accept) as tmp:
            (tmp / "weights.bin").write_text("ours")

    if accept:
        write()  # the other folder is accepted: no error
    else:
        with pytest.raises(OSError, match="not empty"):
            write()
    assert (out / "weights.bin").read_text() == "other"
    assert listing(tmp_path) == ["adapter"]  # neither our temp nor the moved-aside old folder is left
