"""Configs of the methods' own parts: URLLM's user retrieval, LLM4CDSR's user profiles and
RSLLM's two fine-tune stages (no torch or faiss here)."""
from __future__ import annotations

from dataclasses import dataclass

VECTORS = ("domain", "mixed")



INDEXES = ("flat", "hnsw", "ivf")



@dataclass
class RetrievalConfig:
    k: int = 3  # neighbour users returned per query
    vector: str = "domain"  # "domain": Eq. 14 domain-specific vector; "mixed": mixed-thread-only (ablation)
    index: str = "flat"  # "flat" (exact), "hnsw" or "ivf" (approximate, for large user sets)
    nlist: int = 1024  # ivf: number of inverted lists (lowered for small user sets, see module doc)
    nprobe: int = 16  # ivf: lists visited per query
    hnsw_m: int = 32  # hnsw: links per node
    ef_search: int = 64  # hnsw: candidate list size at search time

    def validate(self) -> None:
        for name in ("k", "nlist", "nprobe", "ef_search"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"RetrievalConfig.{name}={getattr(self, name)!r}: must be >= 1")
        if self.hnsw_m < 2:
            raise ValueError(f"RetrievalConfig.hnsw_m={self.hnsw_m!r}: must be >= 2")
        if self.vector not in VECTORS:
            raise ValueError(f"RetrievalConfig.vector={self.vector!r}: expected one of {VECTORS}")
        if self.index not in INDEXES:
            raise ValueError(f"RetrievalConfig.index={self.index!r}: expected one of {INDEXES}")



@dataclass
class ProfileConfig:
    train_users: int = 0  # training users profiled for LLM4CDSR's guidance (seeded sample); 0: no guidance
    test_lines: int = 0  # evaluated test lines profiled for the app (the first of the run's evaluated lines)
    clusters: int = 3  # k-means clusters per user (fewer when the user has fewer distinct items)
    max_items: int = 30  # most recent items of a sequence that are clustered
    titles_per_cluster: int = 6  # most recent titles of a cluster shown to the LLM
    max_new_tokens: int = 40  # per summary
    batch_size: int = 8  # prompts per generate call

    def validate(self) -> None:
        for name in ("train_users", "test_lines"):
            if getattr(self, name) < 0:
                raise ValueError(f"ProfileConfig.{name}={getattr(self, name)!r}: expected >= 0")
        for name in ("clusters", "max_items", "titles_per_cluster", "max_new_tokens", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"ProfileConfig.{name}={getattr(self, name)!r}: expected >= 1")



@dataclass
class RSLLMConfig:
    text_steps: int = 30  # stage 1: optimizer steps on text-only prompts
    unified_steps: int = 60  # stage 2: optimizer steps on soft-token prompts
    batch_size: int = 4  # examples per step (also the in-batch negatives of loss (b))
    lr: float = 3e-4  # LoRA learning rate, both stages
    projector_lr: float = 1e-3  # projectors' learning rate (stage 2; they start from scratch)
    warmup: int = 5  # linear warm-up steps, then cosine decay (each stage)
    lm_weight: float = 1.0  # answer-token cross-entropy
    item_text_weight: float = 0.1  # loss (a): projected ID embedding vs title embedding
    user_item_weight: float = 0.1  # loss (b): user representation vs target item
    temperature: float = 0.1  # InfoNCE temperature on cosine similarities
    seed: int = 0
    progress: bool = True
    dtype: str = "bfloat16"  # the forward pass in both stages: "bfloat16" (autocast, float32 weights) or "float32"

    def validate(self) -> None:
        checks = {
            "text_steps": self.text_steps >= 0, "unified_steps": self.unified_steps >= 0,
            "batch_size": self.batch_size >= 1, "lr": self.lr > 0, "projector_lr": self.projector_lr > 0,
            "warmup": self.warmup >= 0, "lm_weight": self.lm_weight >= 0, "item_text_weight": self.item_text_weight >= 0,
            "user_item_weight": self.user_item_weight >= 0, "temperature": self.temperature > 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"RSLLMConfig.{name}={getattr(self, name)!r} is out of range")
        if self.dtype not in ("bfloat16", "float32"):
            raise ValueError(f"RSLLMConfig.dtype={self.dtype!r}: expected bfloat16 or float32")
        if self.lm_weight + self.item_text_weight + self.user_item_weight == 0:
            raise ValueError("RSLLMConfig: all loss weights are 0")

