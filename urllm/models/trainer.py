"""Training loop of the sequence models: next-item losses on the train split, model
selection and early stopping on the VALID split only (the test split is never looked at)."""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from urllm.data.dataset import Dataset
from urllm.evaluation import evaluate
from urllm.metrics import METRIC_NAMES
from urllm.models.dual_graph import DualGraphModel, ItemTables
from urllm.models.sequences import pad_histories, training_sequences
from urllm.seed import seed_everything


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
class FitResult:
    best_epoch: int
    best_valid: dict
    seconds: float
    history: list[dict] = field(default_factory=list)


class SequenceScorer:
    """Evaluation view of a trained model: item tables computed once, eval mode."""

    def __init__(self, model: DualGraphModel):
        self.model = model.eval()
        with torch.no_grad():
            self.tables: ItemTables = model.item_tables()

    def vectors(self, histories: list[np.ndarray], with_mixed: bool = False):
        seq, lengths = pad_histories(histories, self.model.cfg.max_len, self.model.n_items)
        with torch.no_grad():
            return self.model.user_vectors(seq, lengths, self.tables, with_mixed)

    def scores(self, histories: list[np.ndarray], domain: int) -> torch.Tensor:
        seq, lengths = pad_histories(histories, self.model.cfg.max_len, self.model.n_items)
        with torch.no_grad():
            return self.model.rank_scores(seq, lengths, domain, self.tables)


def length_bucketed_batches(lengths: torch.Tensor, batch_size: int, generator: torch.Generator, block: int = 16) -> list[torch.Tensor]:
    """Random batches of similar lengths (less padding, same data): shuffle, sort each
    block of `block` batches by length, cut, then shuffle the batch order."""
    order = torch.randperm(len(lengths), generator=generator)
    span = batch_size * block
    batches = []
    for s in range(0, len(order), span):
        chunk = order[s : s + span]
        chunk = chunk[torch.argsort(lengths[chunk], stable=True)]
        batches += list(chunk.split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator)]


def fit(model: DualGraphModel, dataset: Dataset, cfg: FitConfig, name: str = "model") -> FitResult:
    cfg.validate()
    seed_everything(cfg.seed)
    data = training_sequences(dataset, dataset.splits["train"], model.cfg.max_len)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    generator = torch.Generator().manual_seed(cfg.seed)
    best_score, best_state, best_epoch, best_valid, stale = -1.0, None, 0, {}, 0
    history, start = [], time.perf_counter()
    lengths = (data.inputs != model.n_items).sum(1)
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        batches = length_bucketed_batches(lengths, cfg.batch_size, generator)
        sums: dict[str, float] = {}
        bar = tqdm(batches, desc=f"{name} epoch {epoch}", leave=False, disable=not cfg.progress)
        for idx in bar:
            inputs, labels, extra = data.inputs[idx], data.labels[idx], data.extra[idx]
            width = int((inputs != model.n_items).sum(1).max())  # trim the batch's padding
            # models guided by per-user data (LLM4CDSR's profiles) also get each row's user
            by_user = {"users": data.users[idx]} if getattr(model, "uses_user_ids", False) else {}
            losses = model.losses(inputs[:, :width], labels[:, :width], extra[:, :width], **by_user)
            optimizer.zero_grad(set_to_none=True)
            losses["total"].backward()
            optimizer.step()
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            bar.set_postfix(loss=f"{float(losses['total'].detach()):.3f}")
        valid = evaluate(SequenceScorer(model), dataset, "valid", cfg.eval_batch_size)
        score = valid["overall"][cfg.select_metric]
        record = {"epoch": epoch, **{k: v / len(batches) for k, v in sums.items()}, "valid": valid["overall"],
                  "seconds": time.perf_counter() - start}
        history.append(record)
        if cfg.progress:
            tqdm.write(f"{name} epoch {epoch}: loss {record['total']:.4f}  valid {cfg.select_metric} {score:.4f}  HR@10 {valid['overall']['HR@10']:.4f}")
        if score > best_score:
            best_score, best_epoch, best_valid, stale = score, epoch, valid, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return FitResult(best_epoch, best_valid, time.perf_counter() - start, history)
