"""The tokenizer of a run's base model, without the model and without torch: what the
app's Prompt page needs to rebuild the run's prompts (urllm/llm/prompt.py counts tokens
with it). A run's `llm.base_model` names it as urllm.llm.base.load_named does: "tiny"
(the random tiny LM of the tests) has SmolLM2's tokenizer, "smollm2" the converted folder
under urllm.llm.base.cache_dir(), any other name a local Hugging Face folder.

transformers' AutoTokenizer imports torch whenever torch is installed (its config
classes do), so a folder whose tokenizer is the generic tokenizer.json class (what the
SmolLM2 conversion writes) is read with that class directly. A model-specific tokenizer
class, or SmolLM2 before `make setup` converted it (its GGUF file), goes through
AutoTokenizer, as load_named does: the same tokenizer, with torch.

    tokenizer = load_tokenizer(run.config["llm"]["base_model"])   # BaseModelError when not installed
"""
from __future__ import annotations

import json
from pathlib import Path

from urllm.llm.base import (
    DEFAULT_BASE_MODEL,
    _hub_offline,
    _prepare_tokenizer,
    is_converted,
    load_tokenizer_only,
    resolve_base_model,
    smollm2_dir,
    smollm2_gguf_path,
)

TINY = "tiny"  # load_named's random tiny LM
GENERIC_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast")  # tokenizer.json alone, the same class in transformers 5


def tokenizer_folder(base_model: str | None) -> Path | None:
    """The HF folder holding a base model's tokenizer; None for SmolLM2 not converted yet."""
    name = DEFAULT_BASE_MODEL if base_model in (None, TINY) else str(base_model)
    if name.strip().lower() == DEFAULT_BASE_MODEL:
        folder = smollm2_dir()
        return folder if is_converted(folder, smollm2_gguf_path()) else None
    return Path(resolve_base_model(name))  # BaseModelError: no such folder, or a hub id (no downloads)


def _tokenizer_class(folder: Path) -> str | None:
    try:
        return json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8")).get("tokenizer_class")
    except (OSError, ValueError):
        return None


def load_tokenizer(base_model: str | None = DEFAULT_BASE_MODEL):
    """The tokenizer load_named(base_model) returns with its model: the same vocabulary and
    chat template, pad token and left padding set."""
    folder = tokenizer_folder(base_model)
    if folder is None or _tokenizer_class(folder) not in GENERIC_CLASSES or not (folder / "tokenizer.json").is_file():
        return load_tokenizer_only(DEFAULT_BASE_MODEL if base_model == TINY else base_model)
    from transformers import PreTrainedTokenizerFast

    with _hub_offline():
        tokenizer = PreTrainedTokenizerFast.from_pretrained(folder, local_files_only=True)
    return _prepare_tokenizer(tokenizer)
