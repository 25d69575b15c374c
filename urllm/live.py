"""Live generation for the app: the run's base LM with its LoRA adapter, the run's prompt
builder, and the generator, rebuilt from the run's files and resolved config (never
trains). The app keeps one `LiveModel` per run in st.cache_resource.

    live = LiveModel.load(run)                       # run: urllm.runs.RunData
    prompt = live.prompt(line, neighbours)           # sections, token counts, text
    gens = live.generate(line, prompt.text, beams=5, max_new_tokens=32)
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from urllm.llm.generate import VARIANTS, GenerationConfig, Generator, for_generation
from urllm.llm.prompt import Prompt, PromptBuilder, PromptConfig
from urllm.llm.refine import fuse
from urllm.runs import Line, RunData, RunError
from urllm.safe_text import relative_paths


def _config(cls, values: dict | None, **changes):
    """A config dataclass from the manifest's dict (unknown keys from other versions are ignored)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return dataclasses.replace(cls(**{k: v for k, v in (values or {}).items() if k in names}), **changes)


class LiveModel:
    def __init__(self, run: RunData, model, tokenizer, tuned: bool = False):
        self.run, self.model, self.tokenizer, self.tuned = run, model, tokenizer, tuned
        llm = run.config.get("llm", {})
        self.dataset = run.dataset()
        self.prompt_config = _config(PromptConfig, llm.get("prompt"))
        self.generation_config = _config(GenerationConfig, llm.get("generation"))
        self.builder = PromptBuilder(self.dataset, tokenizer, self.prompt_config)
        self._generators: dict[tuple[int, int], Generator] = {}

    @classmethod
    def load(cls, run: RunData) -> "LiveModel":
        """The run's base model (+ its adapter when the run has one). RunError with the
        `make setup` hint when the base model is not installed, and naming the adapter's
        folder when the adapter does not load (a corrupt or mismatched weights file)."""
        from urllm.llm.base import BaseModelError, load_named

        base = run.config.get("llm", {}).get("base_model", "smollm2")
        try:
            model, tok = load_named(base, int(run.config.get("seed", 0)))
        except BaseModelError as err:
            raise RunError(f"base model {base!r} of run {run.name}: {relative_paths(err)}") from None
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
        import torch

        if torch.cuda.is_available():  # the app on a GPU machine generates there
            model = model.to("cuda")
        live = cls(run, model, tok, tuned=hasattr(model, "peft_config"))
        live.model = for_generation(model, live.generation_config)  # as the run generated: dtype, adapter folded in
        return live

    def prompt(self, line: Line, neighbours: list[tuple[int, float]], max_tokens: int | None = None) -> Prompt:
        builder = self.builder
        if max_tokens is not None and max_tokens != self.prompt_config.max_tokens:
            builder = PromptBuilder(self.dataset, self.tokenizer, dataclasses.replace(self.prompt_config, max_tokens=max_tokens))
        return builder.build(np.asarray(line.history, np.int64), line.domain, [self.run.user_items(u) for u, _ in neighbours])

    def generate(self, line: Line, prompt_text: str, beams: int | None = None, max_new_tokens: int | None = None,
                 variants=VARIANTS) -> tuple[dict, float]:
        """({variant: Generation}, seconds) for one line; tries are kept per setting."""
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
            ranking = dual[: c.top_k] if refined.fell_back else fuse(dual, refined.extra.get("llm_items", []),
                                                                      self.fusion_weight, c.top_k)
            out["pipeline"] = dataclasses.replace(refined, variant="pipeline", ranking=ranking)
        return out, time.perf_counter() - start

    @property
    def fusion_weight(self) -> float:
        return float(self.run.generations.get("fusion", {}).get("weight", 0.0))
