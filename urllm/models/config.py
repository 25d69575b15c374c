"""Configs of the stage-1 sequence models, their training and the UMAP projection.

Plain dataclasses with documented defaults and a `validate()`; no torch here, so the run
configuration (urllm/pipeline/config.py) and `train.py --help` load without it.
"""
from __future__ import annotations

from dataclasses import dataclass

from urllm.stats import METRIC_NAMES


@dataclass
class DualGraphConfig:
    dim: int = 64  # embedding and hidden size
    n_blocks: int = 2  # transformer blocks per encoder
    n_heads: int = 2
    dropout: float = 0.3
    max_len: int = 50  # most recent items kept per sequence
    gnn_layers: int = 2  # LightGCN layers on each graph
    use_graph: bool = True  # propagate item embeddings over the item graphs (off: plain id embeddings)
    use_attributes: bool = True  # add item-attribute graph embeddings (off for the ablation and SASRec)
    domain_encoders: bool = True  # the A-only and B-only threads (off: SASRec, mixed thread only)
    infomax_weight: float = 0.1  # weight of the contrastive InfoMax term
    align_weight: float = 0.1  # weight of the graph / attribute alignment term
    align_temperature: float = 0.2
    corrupt_prob: float = 0.5  # share of items replaced (same domain) in an InfoMax negative
    edge_weight: str = "log"  # item-graph edge weights: "count" (pair occurrences), "log" (1 + log count) or "binary"
    readout: bool = True  # add the graph readout score (urllm/models/readout.py)
    readout_window: int = 10  # recent items whose graph edges the readout follows
    readout_neighbors: int = 30  # strongest edges kept per item for the readout
    negatives: int = 1024  # N: sampled softmax with N shared uniform negatives (CPU-sized); 0: full softmax over the label's domain

    def validate(self) -> None:
        checks = {
            "dim": self.dim > 0 and self.dim % self.n_heads == 0,
            "n_blocks": self.n_blocks >= 1,
            "n_heads": self.n_heads >= 1,
            "dropout": 0.0 <= self.dropout < 1.0,
            "max_len": self.max_len >= 1,
            "gnn_layers": self.gnn_layers >= 0,
            "infomax_weight": self.infomax_weight >= 0,
            "align_weight": self.align_weight >= 0,
            "align_temperature": self.align_temperature > 0,
            "corrupt_prob": 0.0 < self.corrupt_prob <= 1.0,
            "negatives": self.negatives >= 0,
            "readout_window": self.readout_window >= 1,
            "readout_neighbors": self.readout_neighbors >= 1,
            "edge_weight": self.edge_weight in ("count", "log", "binary"),
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"DualGraphConfig.{name}={getattr(self, name)!r} is out of range")



@dataclass
class FitConfig:
    epochs: int = 40  # upper bound; early stopping usually ends sooner
    batch_size: int = 128  # training users per step
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 4  # epochs without a better valid score before stopping
    select_metric: str = "MRR"  # valid metric used for model selection
    eval_batch_size: int = 512
    seed: int = 0
    progress: bool = True  # tqdm bars

    def validate(self) -> None:
        for name, ok, expected in (("epochs", self.epochs >= 1, ">= 1"), ("batch_size", self.batch_size >= 1, ">= 1"),
                                   ("lr", self.lr > 0, "> 0"), ("patience", self.patience >= 1, ">= 1")):
            if not ok:
                raise ValueError(f"FitConfig.{name}={getattr(self, name)!r}: expected {expected}")
        if self.select_metric not in METRIC_NAMES:
            raise ValueError(f"select_metric={self.select_metric!r}: expected one of {METRIC_NAMES}")



EMBEDDERS = ("minilm", "lm", "both")



@dataclass
class LLM4CDSRConfig:
    dim: int = 64  # model width: adapted item embeddings and transformer hidden size
    n_blocks: int = 2  # transformer blocks per thread
    n_heads: int = 2
    dropout: float = 0.3
    max_len: int = 50  # most recent items kept per sequence
    global_dim: int = 128  # PCA width of the global text table (mixed thread, scoring)
    domain_dim: int = 64  # PCA width of each domain's text table (fitted on that domain's items)
    adapter_hidden: int = 256  # hidden width of the adapter MLPs
    item_ids: bool = True  # add a trainable ID embedding (std 0.02 at init) to the adapted text embeddings
    contrastive_weight: float = 0.1  # weight of the adapter's contrastive regularisation
    temperature: float = 0.2  # InfoNCE temperature of that term
    negatives: int = 1024  # sampled negatives per domain, shared by a batch's positions; 0: full softmax
    embedder: str = "minilm"  # text embedder of the items: "minilm", "lm" (the run's base LM) or "both"
    profile_weight: float = 0.1  # weight of the profile guidance (used only when profiles are given)

    def validate(self) -> None:
        checks = [
            ("n_heads", self.n_heads >= 1, ">= 1"),
            ("dim", self.dim >= 1 and self.dim % max(self.n_heads, 1) == 0, "a positive multiple of n_heads"),
            ("n_blocks", self.n_blocks >= 1, ">= 1"),
            ("dropout", 0.0 <= self.dropout < 1.0, "in [0, 1)"),
            ("max_len", self.max_len >= 1, ">= 1"),
            ("global_dim", self.global_dim >= 1, ">= 1"),
            ("domain_dim", self.domain_dim >= 1, ">= 1"),
            ("adapter_hidden", self.adapter_hidden >= 1, ">= 1"),
            ("contrastive_weight", self.contrastive_weight >= 0, ">= 0 (0 turns the term off)"),
            ("temperature", self.temperature > 0, "> 0"),
            ("negatives", self.negatives >= 0, ">= 0 (0: full softmax over the domain)"),
            ("embedder", self.embedder in EMBEDDERS, f"one of {EMBEDDERS}"),
            ("profile_weight", self.profile_weight >= 0, ">= 0 (0 turns the guidance off)"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"LLM4CDSRConfig.{name}={getattr(self, name)!r}: expected {expected}")



@dataclass
class ProjectionConfig:
    n_neighbors: int = 15  # UMAP neighbourhood size (clamped to n - 1)
    min_dist: float = 0.1  # UMAP minimum distance in the layout, in [0, 1]
    max_points: int = 5000  # project at most this many rows (a seeded sample)
    seed: int = 0  # sampling seed and UMAP random_state

    def validate(self) -> ProjectionConfig:
        if isinstance(self.n_neighbors, bool) or not isinstance(self.n_neighbors, int) or self.n_neighbors < 2:
            raise ValueError(f"n_neighbors must be an int >= 2, got {self.n_neighbors!r}")
        if not isinstance(self.min_dist, (int, float)) or not 0.0 <= float(self.min_dist) <= 1.0:
            raise ValueError(f"min_dist must be in [0, 1], got {self.min_dist!r}")
        if isinstance(self.max_points, bool) or not isinstance(self.max_points, int) or self.max_points < 1:
            raise ValueError(f"max_points must be an int >= 1, got {self.max_points!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise ValueError(f"seed must be an int in [0, 2**32), got {self.seed!r}")
        return self

