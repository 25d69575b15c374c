"""train.py under torchrun (urllm/pipeline/distributed.py): explicit timeouts, and followers
that outwait the collective timeout while rank 0 works (gloo, two CPU processes)."""
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

import train
from urllm.pipeline import distributed

ROOT = Path(__file__).resolve().parents[1]


def test_timeouts_default_and_from_the_environment(monkeypatch):
    monkeypatch.delenv(distributed.TIMEOUT_ENV, raising=False)
    monkeypatch.delenv(distributed.WAIT_ENV, raising=False)
    assert distributed.timeouts() == (timedelta(minutes=30), timedelta(days=1))
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "0.5")
    monkeypatch.setenv(distributed.WAIT_ENV, "120")
    assert distributed.timeouts() == (timedelta(seconds=30), timedelta(hours=2))
    for bad in ("0", "-3", "soon", "inf", "nan", "1e30"):
        monkeypatch.setenv(distributed.WAIT_ENV, bad)
        with pytest.raises(ValueError, match=f"URLLM_DIST_WAIT_MIN='{bad}': expected minutes > 0"):
            distributed.timeouts()


def test_start_gives_both_groups_their_timeouts(monkeypatch):
    import torch

    calls = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "5")
    monkeypatch.delenv(distributed.WAIT_ENV, raising=False)
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda backend, timeout: calls.update(main=(backend, timeout)))
    monkeypatch.setattr(torch.distributed, "new_group", lambda backend, timeout: calls.update(host=(backend, timeout)))
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 1)
    monkeypatch.setattr(distributed, "_host_group", None)
    assert distributed.start("cpu") == 1
    assert calls == {"main": ("gloo", timedelta(minutes=5)), "host": ("gloo", timedelta(days=1))}


def test_a_bad_timeout_is_one_line_before_any_group(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "ten")
    assert train.main(["--profile", "tiny", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == "error: URLLM_DIST_TIMEOUT_MIN='ten': expected minutes > 0 (default 30)\n"
    assert not (tmp_path / "r").exists()


WAITING = """
import time, torch
from urllm.pipeline import distributed

rank = distributed.start("cpu")
torch.distributed.barrier()  # both ranks up
if rank == 0:
    time.sleep(10)  # rank 0's stage 1: longer than the collective timeout (6 s)
    distributed.broadcast_flag(True)
else:
    assert distributed.broadcast_flag(False) is True
distributed.wait_all()
total = torch.ones(1)
torch.distributed.all_reduce(total)  # the main group is still good
print(f"rank {rank} done, {int(total.item())} ranks", flush=True)
"""


def test_followers_outwait_the_collective_timeout(tmp_path):
    script = tmp_path / "waiting.py"
    script.write_text(WAITING)
    torchrun = Path(sys.executable).parent / "torchrun"
    env = os.environ | {"PYTHONPATH": str(ROOT), distributed.TIMEOUT_ENV: "0.1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", str(script)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "rank 0 done, 2 ranks" in done.stdout and "rank 1 done, 2 ranks" in done.stdout
