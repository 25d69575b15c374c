"""The run configuration: one dataclass tree, three profiles, overrides by dotted path.

    cfg = resolve("demo", ["dataset=urllm:../shared/data/amazon-art-office", "dual_graph.dim=32"])

The resolved tree goes into the run's manifest; a stage is reused on rerun only when the
parts of the tree it reads are unchanged. Every section is a plain dataclass from a
torch-free `config` module of its layer, so this module (and `train.py --help`) loads
without torch.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from urllm.llm.config import GenerationConfig, LoraTrainConfig, PromptConfig, RerankConfig
from urllm.methods.config import ProfileConfig, RetrievalConfig, RSLLMConfig
from urllm.models.config import DualGraphConfig, FitConfig, ItemKNNConfig, LLM4CDSRConfig, SASRecConfig


@dataclass
class LLMConfig:
    base_model: str = "smollm2"  # "smollm2" (the shipped GGUF, converted once), a local HF folder, or "tiny" (random, tests)
    k: int = 1  # neighbours in evaluation and app prompts
    train_lines: int = 200  # training lines turned into LoRA examples
    eval_lines: int = 0  # test lines generated for and scored: 0 = every test line (as the stage-1 methods), else a seeded sample
    valid_lines: int = 100  # validation lines generated for to choose the pipeline's fusion weight (0: weight 0)
    fusion_weights: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 1.0, 2.0, 4.0])  # candidates
    ks: list[int] = field(default_factory=lambda: [1])  # retrieval k values evaluated
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    lora: LoraTrainConfig = field(default_factory=LoraTrainConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    rerank: RerankConfig = field(default_factory=RerankConfig)  # "urllm_rerank": the LLM re-scores the dual-graph top-N


@dataclass
class RunConfig:
    dataset: str = "movielens?max_users=2000"  # dataset spec (python -m urllm.data describe SPEC)
    seed: int = 0  # seeds every random choice
    threads: int = 2  # torch CPU threads
    # where every stage trains and scores (stage-1 models and the LLM stages): "auto" = this rank's
    # GPU when CUDA is available (under torchrun the GPU of its LOCAL_RANK), else "cpu"; results come
    # back to the CPU. Tested on the CPU only: the GPU path of the stage-1 models is untested.
    device: str = "auto"
    itemknn: ItemKNNConfig = field(default_factory=ItemKNNConfig)  # item-to-item transition baseline, tuned on valid
    sasrec: SASRecConfig = field(default_factory=SASRecConfig)  # SASRec, full-softmax CE, its grid tuned on valid
    dual_graph: DualGraphConfig = field(default_factory=DualGraphConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    top_n: int = 100  # dual-graph top-N exported per test line
    llm4cdsr: LLM4CDSRConfig = field(default_factory=LLM4CDSRConfig)  # the LLM4CDSR method (item text embeddings + tri-thread model)
    # LLM4CDSR's hierarchical user profiles: how many users and lines, clusters, summary length
    profiles: ProfileConfig = field(default_factory=ProfileConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    # the RSLLM method: its two fine-tune stages and losses; LoRA shape, prompt budget, training
    # and test lines and decoding are llm's (the same test lines as URLLM's variants)
    rsllm: RSLLMConfig = field(default_factory=RSLLMConfig)
    umap_neighbors: int = 15  # umap-learn n_neighbors
    umap_max_points: int = 4000  # users / items projected at most (seeded sample; under 4096 umap skips pynndescent and its compile)


def _tiny() -> RunConfig:
    cfg = RunConfig(dataset="synthetic?n_users=120", top_n=40)
    cfg.dual_graph = DualGraphConfig(dim=16, n_blocks=1, max_len=12)
    cfg.sasrec = SASRecConfig(dims=[16], n_blocks=[1], dropouts=[0.0, 0.3], lrs=[5e-3], max_lens=[12], epochs=3, batch_size=16)
    cfg.fit = FitConfig(epochs=3, batch_size=16, lr=5e-3, patience=3)
    cfg.llm4cdsr = LLM4CDSRConfig(dim=16, n_blocks=1, max_len=12, global_dim=16, domain_dim=8, adapter_hidden=32)
    cfg.llm = LLMConfig(base_model="tiny", train_lines=8, valid_lines=4, ks=[0, 1],
                        prompt=PromptConfig(max_tokens=1500, max_history=10, max_neighbor_items=5),
                        lora=LoraTrainConfig(r=2, alpha=4, steps=3, batch_size=2, target_modules=["q_proj", "v_proj"]),
                        generation=GenerationConfig(num_beams=2, max_new_tokens=12, candidates=10))
    cfg.rsllm = RSLLMConfig(text_steps=2, unified_steps=3, batch_size=2, warmup=1)
    cfg.profiles = ProfileConfig(train_users=6, test_lines=3, clusters=2, max_new_tokens=6)
    cfg.umap_max_points = 500
    return cfg


def _demo() -> RunConfig:
    # 1,600 MovieLens users (320 test lines): with the rerank stage and the six UMAP spaces,
    # 2,000 users took `make demo` past 20 minutes on 2 cores
    cfg = RunConfig(dataset="movielens?max_users=1600")
    cfg.fit = FitConfig(epochs=8, patience=2)
    cfg.llm = LLMConfig(train_lines=120, valid_lines=80, ks=[1], prompt=PromptConfig(max_tokens=384),
                        lora=LoraTrainConfig(steps=40, batch_size=4), generation=GenerationConfig(num_beams=5),
                        rerank=RerankConfig(valid_lines=100))
    # every LLM variant, the re-ranker and RSLLM on all test lines; RSLLM and the profiles are
    # sized so that `make demo` stays under 20 minutes on 2 cores
    cfg.rsllm = RSLLMConfig(text_steps=8, unified_steps=16, batch_size=2, warmup=2)
    cfg.profiles = ProfileConfig(train_users=12, test_lines=8)
    return cfg


def _full() -> RunConfig:
    cfg = RunConfig(dataset="movielens", threads=8)
    cfg.dual_graph = DualGraphConfig(dim=128, negatives=0)
    cfg.fit = FitConfig(epochs=60, batch_size=256, patience=6)
    cfg.sasrec = SASRecConfig(dims=[64, 128], n_blocks=[1, 2], dropouts=[0.2, 0.5], lrs=[1e-3, 3e-4], max_lens=[50, 200],
                              epochs=60, patience=5, batch_size=256)
    cfg.llm = LLMConfig(train_lines=8000, valid_lines=500, ks=[0, 1, 3], prompt=PromptConfig(max_tokens=1024),
                        lora=LoraTrainConfig(steps=2000, batch_size=16, r=16, alpha=32))
    cfg.rsllm = RSLLMConfig(text_steps=1000, unified_steps=2000, batch_size=16)
    cfg.profiles = ProfileConfig(train_users=5000, test_lines=500, batch_size=32)
    return cfg


PROFILES = {"tiny": _tiny, "demo": _demo, "full": _full}


def _parse(value: str, current: Any):
    if isinstance(current, bool):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true or false, got {value!r}")
    if isinstance(current, (int, float)):
        return type(current)(value)
    if isinstance(current, list):  # "[1,2]" or "1,2"; each element of the default's element type
        body = value.strip().removeprefix("[").removesuffix("]").strip()
        sample = type(current[0])() if current else ""
        return [_parse(v.strip().strip("'\""), sample) for v in body.split(",")] if body else []
    return value


def set_field(cfg, dotted: str, value: str) -> None:
    """Set `a.b.c=value` on a dataclass tree; a clear error for an unknown path or bad value."""
    *path, name = dotted.split(".")
    node = cfg
    for part in path:
        if not dataclasses.is_dataclass(node) or not hasattr(node, part):
            raise ValueError(f"unknown config section {part!r} in {dotted!r}")
        node = getattr(node, part)
    names = [f.name for f in dataclasses.fields(node)]
    if name not in names:
        raise ValueError(f"unknown config field {dotted!r}: {type(node).__name__} has {names}")
    current = getattr(node, name)
    if dataclasses.is_dataclass(current):
        raise ValueError(f"{dotted!r} is a section; set one of its fields, e.g. {dotted}.{dataclasses.fields(current)[0].name}=...")
    try:
        setattr(node, name, _parse(value, current))
    except ValueError as err:
        raise ValueError(f"bad value for {dotted}: {err}") from None


def _at_least(low):
    return (lambda v: v >= low), f">= {low}"


def _above(low):
    return (lambda v: v > low), f"> {low}"


# Ranges the sections' own validate() does not state. Beyond these, every number in the
# tree must be finite and every integer >= 0 (they are counts, sizes and seeds); a list
# field's rule applies to each element, and list fields must not be empty.
RANGES = {
    "threads": _at_least(1),
    "top_n": _at_least(1),
    "fit.lr": _above(0),
    "fit.weight_decay": _at_least(0),
    "fit.eval_batch_size": _at_least(1),
    "llm.train_lines": _at_least(1),
    "llm.fusion_weights": _at_least(0),
    "llm.prompt.max_tokens": _at_least(16),
    "llm.prompt.max_history": _at_least(1),
    "llm.lora.alpha": _above(0),
    "umap_neighbors": _at_least(2),
    "umap_max_points": _at_least(3),
}
DEVICES = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
BASE_MODELS = ("smollm2", "tiny")  # or a local Hugging Face model folder


def _leaves(node, prefix: str = ""):
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", value


def _check_value(path: str, value) -> None:
    values = value if isinstance(value, list) else [value]
    if isinstance(value, list) and not value:
        raise ValueError(f"{path}=[]: expected at least one value")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        shown = f"{path}={v!r}" if not isinstance(value, list) else f"{path}={value!r} (element {v!r})"
        if not math.isfinite(v):
            raise ValueError(f"{shown}: expected a finite number")
        ok, expected = RANGES.get(path, ((lambda x: x >= 0), ">= 0") if isinstance(v, int) else ((lambda x: True), ""))
        if not ok(v):
            raise ValueError(f"{shown}: expected {expected}")


def validate(cfg: RunConfig) -> None:
    """Every value of the tree in range before any stage runs (ValueError naming the field,
    the value and what is expected): numbers, enums, the base model and the dataset spec
    (parsed, its options and path checked, nothing loaded)."""
    from urllm.data.spec import parse_spec

    for path, value in _leaves(cfg):
        _check_value(path, value)
    if not DEVICES.fullmatch(cfg.device):
        raise ValueError(f"device={cfg.device!r}: expected auto, cpu, mps, cuda or cuda:N")
    base = cfg.llm.base_model
    if base not in BASE_MODELS and not Path(base).is_dir():
        raise ValueError(f"llm.base_model={base!r}: expected one of {list(BASE_MODELS)} or an existing local model folder")
    for section in (cfg.itemknn, cfg.sasrec, cfg.dual_graph, cfg.fit, cfg.llm4cdsr, cfg.llm.retrieval, cfg.llm.generation,
                    cfg.llm.lora, cfg.llm.rerank, cfg.rsllm, cfg.profiles):
        section.validate()
    parse_spec(cfg.dataset)


def resolve(profile: str, overrides: list[str]) -> RunConfig:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: expected one of {sorted(PROFILES)}")
    cfg = PROFILES[profile]()
    for item in overrides:
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"override {item!r}: expected FIELD=VALUE, e.g. dual_graph.dim=32")
        set_field(cfg, key.strip(), value.strip())
    validate(cfg)
    return cfg


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)
