"""What a run's LLM settings need from this machine and its base model, checked before
train.py writes anything (each failure a ValueError naming the field and what was
expected): the device exists, the base model is an installed or local causal LM, and
every LoRA target module names a layer of it.

Without these checks a larger local model (a Qwen2 or GPT-2 folder, say) with the
default `llm.lora.target_modules`, or `device=cuda` on a machine without CUDA, ran the
stage-1 models for minutes (hours on Art-Office) and then stopped in a traceback.
The model is built on torch's meta device to read its layer names: no weights are
loaded or allocated (a 1.8 B-parameter Qwen2 skeleton builds in 0.03 s).
"""
from __future__ import annotations

import torch


def check_device(device: str) -> None:
    """`device` ("auto", "cpu", "mps", "cuda", "cuda:N") is usable on this machine."""
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            built = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ValueError(f"device={device!r}: {built}; use device=auto or device=cpu")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                             f"expected cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device='mps': Apple's MPS backend is not available here; use device=auto or device=cpu")


def _skeleton(base_model: str):
    """The base model's module tree on the meta device (no weights)."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    from urllm.llm.base import BaseModelError, causal_lm_config, resolve_base_model, smollm2_gguf_path

    if base_model in ("smollm2", "tiny"):  # both Llama; the layer names do not depend on the size
        if base_model == "smollm2":
            smollm2_gguf_path()  # BaseModelError naming `make setup` when the wheel is missing
        config = LlamaConfig(vocab_size=8, hidden_size=8, intermediate_size=8, num_hidden_layers=1,
                             num_attention_heads=1, num_key_value_heads=1)
    else:
        try:
            config = causal_lm_config(resolve_base_model(base_model), local_only=True)
        except BaseModelError as err:
            raise ValueError(f"llm.base_model={base_model!r}: {err}") from None
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return model


def check_lora_targets(base_model: str, target_modules: list[str]) -> None:
    """Each name of `llm.lora.target_modules` is the last part of some layer's name in the
    base model (as peft matches them): a typo beside valid names would otherwise be
    silently ignored, and no match at all stops the LoRA stage hours into a run."""
    model = _skeleton(base_model)
    leaves = {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
              if name and next(module.children(), None) is None}
    missing = [t for t in target_modules if t not in leaves]
    if missing:
        trainable = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                            if type(module).__name__ in ("Linear", "Conv1D")})
        raise ValueError(f"llm.lora.target_modules={target_modules!r}: {missing} name no layer of "
                         f"{type(model).__name__} ({base_model}); its linear layers are {trainable}")


def check_llm(device: str, base_model: str, target_modules: list[str]) -> None:
    check_device(device)
    check_lora_targets(base_model, target_modules)
