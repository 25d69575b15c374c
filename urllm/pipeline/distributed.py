"""train.py under torchrun or `accelerate launch` (WORLD_SIZE > 1): the process groups,
and how long a rank waits for another.

Rank 0 runs every stage and is the one writer of the run folder. The other ranks (the
followers, `urllm.pipeline.stages.follower`) only join the LoRA fine-tune (DDP), and only
when that stage must run:

    rank 0     check the folder | data, stage 1, retrieval | flag | lora (DDP) | done | generation ...
    followers  wait             | wait                     | flag | lora (DDP) | done

Two timeouts, read from the environment (they change no result, so they are not in the
run's config, its manifest or its stage keys):

    URLLM_DIST_TIMEOUT_MIN  minutes, default 30: every collective of the main process group
                            (DDP's all-reduces), so a rank that hangs fails the others
    URLLM_DIST_WAIT_MIN     minutes, default 1440 (a day): how long followers wait for rank
                            0 (loading the data, stage 1: hours on the full profile)

Followers wait on a second group, gloo on the CPU and created with the long timeout: rank
0's flags are broadcast there and `wait_all` is a monitored barrier there (rank 0 names a
rank that never came). So the long wait needs no long timeout on the main group's
collectives (nor nccl's watchdog); and when a rank fails, torchrun stops the others, so a
failed rank 0 leaves no follower waiting out the day. Splitting stage 1's methods across the ranks was left
out: the longest method still outlasts a collective timeout, so followers would wait all
the same, and each method's summary and failure would have to reach rank 0.
"""
from __future__ import annotations

import atexit
import os
from datetime import timedelta

import torch

TIMEOUT_ENV, WAIT_ENV = "URLLM_DIST_TIMEOUT_MIN", "URLLM_DIST_WAIT_MIN"
DEFAULT_TIMEOUT_MIN, DEFAULT_WAIT_MIN = 30.0, 24 * 60.0

_host_group = None  # the gloo group of the long waits, made by `start`


def _minutes(name: str, default: float) -> timedelta:
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
        if value > 0:
            return timedelta(minutes=value)
    except (ValueError, OverflowError):  # not a number; inf or too large for a timedelta
        pass
    raise ValueError(f"{name}={raw!r}: expected minutes > 0 (default {default:g})")


def timeouts() -> tuple[timedelta, timedelta]:
    """(collective timeout, followers' wait), from URLLM_DIST_TIMEOUT_MIN and URLLM_DIST_WAIT_MIN."""
    return _minutes(TIMEOUT_ENV, DEFAULT_TIMEOUT_MIN), _minutes(WAIT_ENV, DEFAULT_WAIT_MIN)


def start(device: str) -> int:
    """Join the process group when launched with WORLD_SIZE > 1 and return this process's
    rank; otherwise 0. nccl when the run is on GPUs (each rank on the GPU of its LOCAL_RANK),
    gloo on the CPU; ValueError for a bad timeout in the environment."""
    global _host_group

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0
    collective, wait = timeouts()
    gpu = torch.cuda.is_available() and device in ("auto", "cuda")
    if gpu:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    torch.distributed.init_process_group("nccl" if gpu else "gloo", timeout=collective)
    _host_group = torch.distributed.new_group(backend="gloo", timeout=wait)
    atexit.register(stop)
    return torch.distributed.get_rank()


def stop() -> None:
    """Leave the process groups; at exit (`start` registers it): a rank that exits with its
    groups still up can abort in gloo's teardown as its peers exit too."""
    if active():
        torch.distributed.destroy_process_group()


def active() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def broadcast_flag(value: bool) -> bool:
    """Rank 0's `value` on every rank (the others' `value` is not read); they wait for it
    up to URLLM_DIST_WAIT_MIN."""
    flag = torch.tensor([int(value)])
    torch.distributed.broadcast(flag, src=0, group=_host_group)
    return bool(flag.item())


def wait_all() -> None:
    """Every rank waits here for the others, up to URLLM_DIST_WAIT_MIN."""
    torch.distributed.monitored_barrier(group=_host_group, wait_all_ranks=True)
