"""One writer per run folder (urllm/pipeline/lock.py, urllm/pipeline/writer.py): a second writer is refused at
once naming the holder, a dead holder's lock is taken over, and the lock is released on
every exit path. Real processes, since the lock is between processes."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import train
from urllm.pipeline.lock import RunLock, RunLocked, holder
from urllm.pipeline.manifest import file_record
from urllm.pipeline.writer import Run, RunRefused

ROOT = Path(__file__).resolve().parents[1]
HOLD = """
import sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from urllm.pipeline.writer import Run
run = Run(Path({out!r}), {{"a": 1}}, Path({root!r}))
print("locked", flush=True)
time.sleep(600)
"""


def hold(out: Path) -> subprocess.Popen:
    """A process that opens a run in `out` and keeps it (until killed)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD.format(root=str(ROOT), out=str(out))], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def wait_for_lock(out: Path, pid: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = holder(out) if out.is_dir() else None
        if info and info.get("pid") == pid:
            return
        time.sleep(0.2)
    raise AssertionError(f"{out}: process {pid} never took the lock")


def test_second_lock_refused_naming_the_holder_and_free_after_release(tmp_path):
    first = RunLock(tmp_path).acquire()
    with pytest.raises(RunLocked, match=f"PID {os.getpid()} on host {socket.gethostname()}"):
        RunLock(tmp_path).acquire()
    assert holder(tmp_path)["pid"] == os.getpid()
    first.release()
    assert holder(tmp_path) is None
    with RunLock(tmp_path) as again:
        assert again.took_over is None  # released cleanly: nobody to take over from


def test_another_process_holding_the_run_refuses_train_at_once(tmp_path):
    out = tmp_path / "r"
    proc = hold(out)
    try:
        start = time.monotonic()
        done = subprocess.run([sys.executable, str(ROOT / "train.py"), "--profile", "tiny", "--out", str(out)],
                              capture_output=True, text=True, timeout=120)
        seconds = time.monotonic() - start
        assert done.returncode == 2, done.stderr
        assert f"being written by PID {proc.pid} on host {socket.gethostname()}" in done.stderr
        assert "Traceback" not in done.stderr and seconds < 60
        assert json.loads((out / "manifest.json").read_text())["config"] == {"a": 1}  # the holder's, untouched
    finally:
        proc.kill()
        proc.wait()


def test_lock_of_a_killed_process_is_taken_over(tmp_path):
    out = tmp_path / "r"
    proc = hold(out)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert holder(out) is None  # the kernel let go with the process
    with Run(out, {"a": 1}, tmp_path) as run:
        assert run.lock.took_over["pid"] == proc.pid
        assert holder(out)["pid"] == os.getpid()
    assert holder(out) is None


def test_lock_released_when_the_pipeline_fails(tmp_path, monkeypatch, capsys):
    import urllm.pipeline.stages

    def failing(cfg, run, ds):
        assert holder(run.dir)["pid"] == os.getpid()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(urllm.pipeline.stages, "run_pipeline", failing)
    assert train.main(["--profile", "tiny", "--out", str(tmp_path / "r")]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert holder(tmp_path / "r") is None


def test_two_train_processes_on_one_folder_one_writes_and_files_match(tmp_path):
    out = tmp_path / "r"
    cmd = [sys.executable, str(ROOT / "train.py"), "--profile", "tiny", "--out", str(out)]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_lock(out, first.pid)
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and f"being written by PID {first.pid}" in second.stderr, second.stderr
        stdout, stderr = first.communicate(timeout=600)
    finally:
        first.kill()
    assert first.returncode == 0 and "run complete" in stdout, stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"]
    for stage in manifest["stages"]:
        for rec in stage["files"]:
            assert file_record(out / rec["path"], out)["sha256"] == rec["sha256"], rec["path"]
    assert holder(out) is None


def a_file(path: Path) -> Path:
    path.write_text("x")
    return path


@pytest.mark.parametrize("make, expected", [
    (a_file, "is a file, expected a run folder"),
    (lambda p: a_file(p) / "run", "is a file, expected a folder"),
    (lambda p: p / ("n" * 300), "File name too long"),
])
def test_out_that_cannot_be_a_run_folder_is_one_line(tmp_path, make, expected):
    out = make(tmp_path / "out")
    with pytest.raises(RunRefused, match=expected):
        Run.check(out, {"a": 1})


def test_unwritable_parent_refused(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        with pytest.raises(RunRefused, match="is not writable"):
            Run.check(parent / "r", {"a": 1})
    finally:
        parent.chmod(0o700)


@pytest.fixture
def read_only_dir(tmp_path):
    """A read-only tmpfs (root may mount one here; root ignores permission bits, not EROFS)."""
    where = tmp_path / "rofs"
    where.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(where)], capture_output=True).returncode:
        pytest.skip("cannot mount a read-only filesystem here")
    yield where
    subprocess.run(["umount", str(where)], check=True)


def test_out_on_a_read_only_filesystem_is_one_line_and_exit_2(read_only_dir, capsys):
    out = read_only_dir / "r"
    with pytest.raises(RunRefused, match="read-only filesystem"):
        Run.check(out, {"a": 1})
    assert train.main(["--profile", "tiny", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "read-only filesystem" in err and "Traceback" not in err, err
    assert not out.exists()
