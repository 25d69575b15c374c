"""What the stages' builders read (urllm/pipeline/stages.py): the dataset, the graphs,
the base LM, the neighbours, the run's dual-graph model ... each made on first use and
then kept, so a stage that is reused loads nothing and a run whose stages are all
reused loads no model at all.
"""
from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

import torch

from urllm.data import Dataset, load_dataset
from urllm.pipeline.config import RunConfig


def run_device(cfg: RunConfig) -> torch.device:
    """Where this process trains and scores (stage 1 and the LLM stages): `cfg.device`, or
    for "auto" this rank's GPU under CUDA (the GPU of its LOCAL_RANK under torchrun), else the CPU."""
    if cfg.device != "auto":
        return torch.device(cfg.device)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def load_llm(cfg: RunConfig):
    """A new (model, tokenizer) of the run's base LM, the model on the run's device."""
    from urllm.llm.base import load_named

    model, tok = load_named(cfg.llm.base_model, cfg.seed)
    return model.to(run_device(cfg)), tok


def dataset_graphs(ds: Dataset):
    """The item graphs of the dual-graph models, from the train split's sequences."""
    from urllm.models.graphs import build_graphs
    from urllm.models.sequences import graph_sequences

    return build_graphs(graph_sequences(ds.splits["train"]), ds.item_domain, ds.item_attributes)


class Context:
    """One run's shared inputs for the builders of its stages (and, under torchrun, for a
    follower's share of the LoRA fine-tune). Each property is computed once, on first read.
    Properties read from the run folder (`vectors`, `rankings`, `dual_graph`) must be read
    only by stages after the one that writes those files, which the stage table's order
    ensures."""

    def __init__(self, cfg: RunConfig, run_dir: Path, ds: Dataset | None = None):
        self.cfg, self.dir = cfg, Path(run_dir)
        if ds is not None:
            self.ds = ds  # already loaded (train.py loads it before creating the run folder)

    @cached_property
    def ds(self) -> Dataset:
        return load_dataset(self.cfg.dataset)

    @cached_property
    def device(self) -> torch.device:
        return run_device(self.cfg)

    @cached_property
    def graphs(self):
        return dataset_graphs(self.ds)

    @cached_property
    def lm(self):
        """(model, tokenizer): the base LM on the run's device. Read by the profiles and the
        llm4cdsr stages; the LoRA stage then adds its adapter to this same model (so
        `fresh_lm` is what a later stage wanting a base LM uses)."""
        return load_llm(self.cfg)

    @cached_property
    def tuned_lm(self):
        """The LoRA-tuned LM: set by the lora stage when it trains, else `lm` with the run's adapter."""
        from urllm.llm.finetune import load_adapter

        return load_adapter(self.lm[0], self.dir / "lora")

    @cached_property
    def generation_lm(self):
        """`tuned_lm` made ready to generate and score (urllm.llm.generate.for_generation: the
        configured dtype, the adapter folded in), shared by the generation and rerank stages."""
        from urllm.llm.generate import for_generation

        return for_generation(self.tuned_lm, self.cfg.llm.generation)

    def fresh_lm(self):
        """A new base LM, for a stage that fine-tunes its own (rsllm, after generation). The
        kept `lm`, `tuned_lm` and `generation_lm` are let go first, so one LM is held at a time."""
        for name in ("lm", "tuned_lm", "generation_lm"):
            self.__dict__.pop(name, None)
        return load_llm(self.cfg)

    @cached_property
    def vectors(self) -> dict[str, torch.Tensor]:
        """stage1_vectors.safetensors of the dual_graph stage."""
        from safetensors.torch import load_file

        return load_file(self.dir / "stage1_vectors.safetensors")

    @cached_property
    def rankings(self) -> dict[str, torch.Tensor]:
        """stage1_rankings.safetensors of the dual_graph stage: "test_top" and "valid_top"."""
        from safetensors.torch import load_file

        return load_file(self.dir / "stage1_rankings.safetensors")

    @cached_property
    def neighbours(self):
        from urllm.methods.urllm_stage2 import Neighbours

        return Neighbours(self.ds, self.vectors, self.cfg.llm.retrieval)

    @cached_property
    def prompts(self):
        """URLLM's prompt builder (it counts tokens with the base LM's tokenizer)."""
        from urllm.llm.prompt import PromptBuilder

        return PromptBuilder(self.ds, self.lm[1], self.cfg.llm.prompt)

    @cached_property
    def dual_graph(self):
        """The run's trained dual-graph model as a scorer on the run's device (it completes
        the LLM methods' lists into full ranks: urllm.models.evaluation.CompletedRanks)."""
        from urllm.models.export import load_model
        from urllm.models.trainer import SequenceScorer, to_device

        model = load_model(self.dir, "dual_graph", torch.from_numpy(self.ds.item_domain), self.graphs)
        return SequenceScorer(to_device(model, self.device))
