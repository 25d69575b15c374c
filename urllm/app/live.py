"""Live prompts and generation for the app, rebuilt from the run's files and resolved
config (never trains). `RunPrompts` is the run's prompt builder over its base model's
tokenizer alone (no torch: all the Prompt page needs); `LiveModel` adds the base LM with
its LoRA adapter and the generator (torch, loaded when the Generation page generates).
The app keeps one of each per run in st.cache_resource.

    prompts = RunPrompts.load(run)                   # run: urllm.app.reader.RunData
    prompt = prompts.prompt(line, neighbours)        # sections, token counts, text
    live = LiveModel.load(run)
    gens, seconds = live.generate(line, live.prompt(line, neighbours).text, beams=5, max_new_tokens=32)
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from urllm.app.reader import Line, RunData, RunError
from urllm.app.safe_text import relative_paths
from urllm.llm.config import GenerationConfig, PromptConfig
from urllm.llm.prompt import Prompt, PromptBuilder
from urllm.schema import VARIANTS


def _config(cls, values: dict | None, **changes):
    """A config dataclass from the manifest's dict (unknown keys from other versions are ignored)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return dataclasses.replace(cls(**{k: v for k, v in (values or {}).items() if k in names}), **changes)


def _base_model(run: RunData) -> str:
    from urllm.llm.base import DEFAULT_BASE_MODEL

    return run.config.get("llm", {}).get("base_model", DEFAULT_BASE_MODEL)


def _base_model_error(run: RunData, err: Exception) -> RunError:
    """The `make setup` hint of a base model that is not installed, without server paths."""
    return RunError(f"base model {_base_model(run)!r} of run {run.name}: {relative_paths(err)}")


class RunPrompts:
    """The run's prompts as train.py built them: its data, its prompt config, its base
    model's tokenizer."""

    def __init__(self, run: RunData, tokenizer):
        self.run, self.tokenizer = run, tokenizer
        self.dataset = run.dataset()
        self.config = _config(PromptConfig, run.config.get("llm", {}).get("prompt"))
        self.builder = PromptBuilder(self.dataset, tokenizer, self.config)

    @classmethod
    def load(cls, run: RunData) -> RunPrompts:
        """With the tokenizer alone (urllm/llm/tokenizer.py); RunError with the `make setup`
        hint when the base model is not installed."""
        from urllm.llm.base import BaseModelError
        from urllm.llm.tokenizer import load_tokenizer

        try:
            tokenizer = load_tokenizer(_base_model(run))
        except BaseModelError as err:
            raise _base_model_error(run, err) from None
        return cls(run, tokenizer)

    def prompt(self, line: Line, neighbours: list[tuple[int, float]], max_tokens: int | None = None) -> Prompt:
        builder = self.builder
        if max_tokens is not None and max_tokens != self.config.max_tokens:
            builder = PromptBuilder(self.dataset, self.tokenizer, dataclasses.replace(self.config, max_tokens=max_tokens))
        return builder.build(np.asarray(line.history, np.int64), line.domain, [self.run.user_items(u) for u, _ in neighbours])


class LiveModel:
    def __init__(self, run: RunData, model, tokenizer, tuned: bool = False):
        self.run, self.model, self.tokenizer, self.tuned = run, model, tokenizer, tuned
        self.prompts = RunPrompts(run, tokenizer)
        self.dataset = self.prompts.dataset
        self.generation_config = _config(GenerationConfig, run.config.get("llm", {}).get("generation"))
        self._generators: dict = {}  # (beams, max_new_tokens) -> urllm.llm.generate.Generator

    @classmethod
    def load(cls, run: RunData) -> LiveModel:
        """The run's base model (+ its adapter when the run has one). RunError with the
        `make setup` hint when the base model is not installed, and naming the adapter's
        folder when the adapter does not load (a corrupt or mismatched weights file)."""
        import torch

        from urllm.llm.base import BaseModelError, load_named
        from urllm.llm.generate import for_generation

        base = _base_model(run)
        try:
            model, tok = load_named(base, run.seed)
        except BaseModelError as err:
            raise _base_model_error(run, err) from None
        adapter = run.lora_adapter()  # RunError naming a missing or corrupt adapter file
        if adapter is not None:
            from peft import PeftModel
            from safetensors import SafetensorError

            try:
                model = PeftModel.from_pretrained(model, str(adapter)).eval()
            except (SafetensorError, OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
                # e.g. tensors of other shapes than the base model's layers
                problem = relative_paths(f"{type(err).__name__}: {err}", run.dir.parent)
                raise RunError(f"the LoRA adapter does not load on base model {base!r} ({problem})",
                               run.label("lora/")) from None
        if torch.cuda.is_available():  # the app on a GPU machine generates there
            model = model.to("cuda")
        live = cls(run, model, tok, tuned=hasattr(model, "peft_config"))
        live.model = for_generation(model, live.generation_config)  # as the run generated: dtype, adapter folded in
        return live

    @property
    def prompt_config(self) -> PromptConfig:
        return self.prompts.config

    def prompt(self, line: Line, neighbours: list[tuple[int, float]], max_tokens: int | None = None) -> Prompt:
        return self.prompts.prompt(line, neighbours, max_tokens)

    def generate(self, line: Line, prompt_text: str, beams: int | None = None, max_new_tokens: int | None = None,
                 variants=VARIANTS) -> tuple[dict, float]:
        """({variant: Generation}, seconds) for one line; tries are kept per setting. With
        "refined", also "pipeline": the run's fused list (the pipeline's own function)."""
        from urllm.llm.generate import Generator
        from urllm.methods.urllm_stage2 import fused_ranking

        c = self.generation_config
        key = (beams or c.num_beams, max_new_tokens or c.max_new_tokens)
        if key not in self._generators:
            cfg = dataclasses.replace(c, num_beams=key[0], max_new_tokens=key[1])
            titles = next(iter(self._generators.values())).titles if self._generators else None
            self._generators[key] = Generator(self.model, self.tokenizer, self.dataset, cfg, titles)
        start = time.perf_counter()
        dual = self.run.dual_graph_top(line)
        out = self._generators[key].run(prompt_text, line.domain, dual, variants)
        if "refined" in out:  # the full pipeline: Algorithm 1, then the fusion weight the run chose on valid
            refined = out["refined"]
            ranking = fused_ranking(dual, refined, self.run.fusion_weight, c.top_k)
            out["pipeline"] = dataclasses.replace(refined, variant="pipeline", ranking=ranking)
        return out, time.perf_counter() - start
