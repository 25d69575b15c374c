"""`python -m urllm.data describe SPEC [--json]` in a subprocess, and spec parsing."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from data_fixtures import set_line, write_urllm_release

from urllm.data import DataError, load_dataset, parse_spec
from urllm.data.synthetic import SyntheticConfig

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "urllm.data", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def assert_one_error_line(result: subprocess.CompletedProcess, *parts: str) -> str:
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for part in parts:
        assert part in lines[0], f"{part!r} not in {lines[0]!r}"
    return lines[0]


def test_describe_json():
    result = cli("describe", "synthetic", "--json")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    d = json.loads(lines[0])
    cfg = SyntheticConfig()
    assert d["domains"] == ["art", "office"]
    assert d["n_users"] == cfg.n_users
    assert d["n_items"] == {"art": cfg.items_per_domain, "office": cfg.items_per_domain}
    ds = load_dataset("synthetic")  # the same figures as in-process
    assert d["n_interactions"] == sum(len(u.items) for u in ds.users)
    assert d["splits"] == {s: len(ds.splits[s]) for s in ("train", "valid", "test")}
    assert sum(d["split_users"].values()) == cfg.n_users


def test_describe_table():
    result = cli("describe", "synthetic?n_users=40")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout
    assert "domains        A = art, B = office" in out
    assert "users          40 " in out
    for split in ("train", "valid", "test"):
        assert f"  {split}" in out


def test_unknown_source_exits_2():
    assert_one_error_line(cli("describe", "nosuch"), "'nosuch'", "movielens", "synthetic")


def test_bad_file_exits_2(tmp_path):
    root = write_urllm_release(tmp_path / "release")
    set_line(root / "test.txt", 2, "3\t2")
    assert_one_error_line(cli("describe", f"urllm:{root}", "--json"), "test.txt:2", "truncated")


def test_bad_option_exits_2():
    assert_one_error_line(cli("describe", "synthetic?n_users=abc"), "n_users", "'abc'", "int")


def test_missing_spec_is_a_usage_error():
    result = cli("describe")
    assert result.returncode == 2 and "usage:" in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------- spec parsing


def test_parse_spec_fields(tmp_path):
    source, arg, cfg = parse_spec("synthetic?n_users=50&p_on_topic=0.5&seed=3")
    assert (source, arg) == ("synthetic", "")
    assert (cfg.n_users, cfg.p_on_topic, cfg.seed) == (50, 0.5, 3)
    assert isinstance(cfg.n_users, int) and isinstance(cfg.p_on_topic, float)
    assert cfg.items_per_domain == SyntheticConfig().items_per_domain  # untouched default
    source, arg, cfg = parse_spec(f"amazon:{tmp_path}:A,B?skip_unknown=yes&k_core=3")  # the folder must exist
    assert (source, arg, cfg.skip_unknown, cfg.k_core) == ("amazon", f"{tmp_path}:A,B", True, 3)
    assert parse_spec(f"amazon:{tmp_path}:A,B?skip_unknown=0")[2].skip_unknown is False
    source, arg, cfg = parse_spec(f"urllm:{tmp_path}?domains=office,art")  # nothing is read: an empty folder parses
    assert (arg, cfg.domains) == (str(tmp_path), "office,art")


def test_unknown_option_lists_valid_keys():
    with pytest.raises(DataError) as info:
        parse_spec("synthetic?n_user=5")
    message = str(info.value)
    assert "'n_user'" in message
    for key in ("n_users", "items_per_domain", "n_topics", "seed"):
        assert key in message


@pytest.mark.parametrize(
    "spec, parts",
    [
        ("synthetic?n_users=abc", ["n_users", "'abc'", "int"]),
        ("synthetic?p_on_topic=high", ["p_on_topic", "'high'", "float"]),
        ("amazon:.:A,B?skip_unknown=maybe", ["skip_unknown", "'maybe'", "bool"]),
        ("synthetic?n_users", ["'n_users'", "no value"]),
        ("nosuch:x", ["'nosuch'", "movielens", "urllm", "amazon", "synthetic"]),
    ],
)
def test_bad_spec_messages(spec, parts):
    with pytest.raises(DataError) as info:
        parse_spec(spec)
    for part in parts:
        assert part in str(info.value)
