"""Configs of the stage-1 sequence models, their training and the UMAP projection.

Plain dataclasses with documented defaults and a `validate()`; no torch here, so the run
configuration (urllm/pipeline/config.py) and `train.py --help` load without it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

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



@dataclass
class SASRecConfig:
    """SASRec (one causal encoder over plain item embeddings of the mixed sequence), trained
    with full-softmax cross-entropy over the label's domain (`negatives=0`: a domain has a
    few thousand items, so the exact softmax is affordable on a CPU and needs no logQ
    correction) and tuned on the VALID split over the grid of every list's values (set one
    from the command line as `--set sasrec.dropouts=0.2,0.5`)."""
    dims: list[int] = field(default_factory=lambda: [64])  # embedding and hidden size
    n_blocks: list[int] = field(default_factory=lambda: [1])  # transformer blocks
    dropouts: list[float] = field(default_factory=lambda: [0.2])
    # AdamW learning rate: on Art-Office 1e-3 stays at popularity's level for 4 epochs, 5e-3 learns
    lrs: list[float] = field(default_factory=lambda: [5e-3, 1e-2])
    max_lens: list[int] = field(default_factory=lambda: [50])  # most recent items kept per sequence
    n_heads: int = 1
    negatives: int = 0  # 0: full softmax over the label's domain; N: N shared uniform negatives
    epochs: int = 10  # upper bound per grid point (an Art-Office epoch is ~30 s on 2 cores); early stopping on valid
    patience: int = 3  # epochs without a better valid score before a point stops
    batch_size: int = 128

    def points(self) -> list[dict]:
        """The grid in a fixed order (dims, then blocks, dropout, lr, max_len)."""
        return [{"dim": d, "n_blocks": b, "dropout": p, "lr": lr, "max_len": m}
                for d in self.dims for b in self.n_blocks for p in self.dropouts for lr in self.lrs for m in self.max_lens]

    def validate(self) -> None:
        checks = [
            ("dims", len(self.dims) > 0 and all(d >= 1 and d % max(self.n_heads, 1) == 0 for d in self.dims),
             "positive multiples of n_heads"),
            ("n_blocks", len(self.n_blocks) > 0 and all(b >= 1 for b in self.n_blocks), "values >= 1"),
            ("dropouts", len(self.dropouts) > 0 and all(0.0 <= p < 1.0 for p in self.dropouts), "values in [0, 1)"),
            ("lrs", len(self.lrs) > 0 and all(lr > 0 for lr in self.lrs), "values > 0"),
            ("max_lens", len(self.max_lens) > 0 and all(m >= 1 for m in self.max_lens), "values >= 1"),
            ("n_heads", self.n_heads >= 1, ">= 1"),
            ("negatives", self.negatives >= 0, ">= 0 (0: full softmax)"),
            ("epochs", self.epochs >= 1, ">= 1"),
            ("patience", self.patience >= 1, ">= 1"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"SASRecConfig.{name}={getattr(self, name)!r}: expected {expected}")


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



@dataclass
class ItemKNNConfig:
    """The item-to-item transition baseline (urllm/models/itemknn.py), tuned on the VALID
    split over every combination of the four lists below (grid order: windows, then
    recencies, cross_weights, norms; equal valid scores keep the first point; set one from
    the command line as `--set itemknn.windows=1,3`)."""
    # a pair a -> b counts when b is at most this many positions after a (weight 1/gap)
    windows: list[int] = field(default_factory=lambda: [1, 3, 10])
    # weight recency**age of a history item (age 0 = the last item; 0: it alone)
    recencies: list[float] = field(default_factory=lambda: [0.5, 0.8])
    # weight of a history item of the other domain than the target
    cross_weights: list[float] = field(default_factory=lambda: [0.25, 0.5, 1.0])
    norms: list[float] = field(default_factory=lambda: [0.0, 0.5])  # T[h, i] / out[h]**norm: 0 raw counts, 1 transition shares
    history_len: int = 20  # most recent history items used
    select_metric: str = "MRR"  # valid metric used to pick the grid point
    batch_size: int = 256  # lines scored at once

    def validate(self) -> None:
        def values(name, ok, expected):  # a grid: a non-empty list of numbers that pass `ok`
            grid = getattr(self, name)
            good = isinstance(grid, (tuple, list)) and len(grid) > 0 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and ok(v) for v in grid)
            return name, good, f"a non-empty list of {expected}"

        checks = [
            values("windows", lambda v: isinstance(v, int) and v >= 1, "ints >= 1"),
            values("recencies", lambda v: 0.0 <= v <= 1.0, "values in [0, 1]"),
            values("cross_weights", lambda v: v >= 0.0, "values >= 0"),
            values("norms", lambda v: 0.0 <= v <= 1.0, "values in [0, 1]"),
            ("history_len", isinstance(self.history_len, int) and self.history_len >= 1, "an int >= 1"),
            ("select_metric", self.select_metric in METRIC_NAMES, f"one of {METRIC_NAMES}"),
            ("batch_size", isinstance(self.batch_size, int) and self.batch_size >= 1, "an int >= 1"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"ItemKNNConfig.{name}={getattr(self, name)!r}: expected {expected}")
