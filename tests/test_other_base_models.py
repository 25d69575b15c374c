"""Any local HF causal LM by configuration (issue 19): with a tiny random Qwen2 and GPT-2
folder as `llm.base_model`, train.py runs every LLM method and the app's live model
generates (neither is Llama, so the re-ranker and generation take their padded-batch
paths); settings the machine or the model cannot honour are refused before anything is
written (urllm/llm/checks.py)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from urllm.llm.checks import check_device, check_llm, check_lora_targets

ROOT = Path(__file__).resolve().parents[1]
LLM_METHODS = {"urllm", "urllm_free", "urllm_constrained", "urllm_candidates", "urllm_refined", "urllm_rerank", "rsllm"}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Two tiny random causal LMs saved as HF folders with SmolLM2's tokenizer."""
    from transformers import GPT2Config, GPT2LMHeadModel, Qwen2Config, Qwen2ForCausalLM

    from urllm.llm.base import DEFAULT_BASE_MODEL, load_tokenizer_only

    tok = load_tokenizer_only(DEFAULT_BASE_MODEL)
    ids = dict(eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    models = {
        "qwen2": Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                              num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                                              tie_word_embeddings=True, **ids)),
        "gpt2": GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=2048, **ids)),
    }
    root = tmp_path_factory.mktemp("base_models")
    for name, model in models.items():
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
    return root


def train(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "train.py", "--profile", "tiny", "--out", str(out), *extra], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("arch, targets", [("qwen2", None), ("gpt2", '["c_attn"]')])
def test_train_runs_every_llm_method_on_another_architecture(folders, tmp_path, arch, targets):
    out = tmp_path / arch
    extra = ["--set", f"llm.base_model={folders / arch}"]
    if targets:  # GPT-2 names its attention projection c_attn, not q_proj/v_proj
        extra += ["--set", f"llm.lora.target_modules={targets}"]
    done = train(out, *extra)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and LLM_METHODS <= set(manifest["metrics"])
    assert manifest["config"]["llm"]["base_model"] == str(folders / arch)
    adapter = json.loads((out / "lora" / "adapter_config.json").read_text())
    assert set(adapter["target_modules"]) == set(json.loads(targets) if targets else ["q_proj", "v_proj"])
    rerank, gens = (json.loads((out / f).read_text()) for f in ("rerank.json", "generations.json"))
    assert rerank["lines"] == gens["lines"] and len(rerank["ranks"]) == len(rerank["lines"]) > 0
    # the app's live model (urllm/app/live.py) loads the run's base model and adapter and generates
    from urllm.app.live import LiveModel
    from urllm.app.reader import RunData

    run = RunData.open(arch, tmp_path)
    live = LiveModel.load(run)
    line = run.test_lines[gens["lines"][0]]
    prompt = live.prompt(line, run.neighbours(line, 1))
    gen = run.config["llm"]["generation"]
    outputs, _ = live.generate(line, prompt.text, gen["num_beams"], gen["max_new_tokens"])
    assert type(live.model).__name__ == {"qwen2": "Qwen2ForCausalLM", "gpt2": "GPT2LMHeadModel"}[arch]
    assert {"free", "constrained", "candidates", "refined", "pipeline"} <= set(outputs)
    assert all(len(g.ranking) > 0 for g in outputs.values())


def test_lora_targets_the_model_lacks_are_refused_before_anything_is_written(folders, tmp_path):
    out = tmp_path / "run"
    done = train(out, "--set", f"llm.base_model={folders / 'gpt2'}")  # the tiny profile's q_proj, v_proj
    assert done.returncode == 2 and not out.exists()
    line = done.stderr.strip()
    assert "\n" not in line and "llm.lora.target_modules" in line and "GPT2LMHeadModel" in line and "c_attn" in line


def test_a_typo_beside_valid_target_names_is_refused_naming_it():
    check_lora_targets("tiny", ["q_proj", "v_proj"])
    with pytest.raises(ValueError, match=r"\['q_prj'\] name no layer of LlamaForCausalLM.*'o_proj'"):
        check_lora_targets("tiny", ["q_prj", "v_proj"])


def test_a_folder_that_is_no_causal_lm_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    with pytest.raises(ValueError, match="llm.base_model=.*not a causal language model"):
        check_llm("cpu", str(tmp_path), ["q_proj"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_a_cuda_device_without_cuda_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match=r"device='cuda:1'.*device=cpu"):
        check_device("cuda:1")
    check_device("cpu")
    check_device("auto")
    done = train(tmp_path / "run", "--set", "device=cuda")
    assert done.returncode == 2 and not (tmp_path / "run").exists() and "device='cuda'" in done.stderr
