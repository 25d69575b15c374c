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
from urllm.models.config import FitConfig
from urllm.models.dual_graph import DualGraphModel, ItemTables
from urllm.models.evaluation import evaluate
from urllm.models.sequences import pad_histories, training_sequences
from urllm.seed import seed_everything


@dataclass
class FitResult:
    best_epoch: int
    best_valid: dict
    seconds: float
    history: list[dict] = field(default_factory=list)


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def to_device(model: DualGraphModel, device: torch.device | str) -> DualGraphModel:
    """`model.to(device)`, the dual-graph model's normalised adjacencies included: it keeps
    them in a plain dict, which `Module.to` does not move."""
    model.to(device)
    if getattr(model, "adjacency", None):
        model.adjacency = {k: a.to(device) for k, a in model.adjacency.items()}
    return model


class SequenceScorer:
    """Evaluation view of a trained model: item tables computed once, eval mode. It scores
    on the model's device and hands back CPU tensors."""

    def __init__(self, model: DualGraphModel):
        self.model = model.eval()
        self.device = model_device(model)
        with torch.no_grad():
            self.tables: ItemTables = model.item_tables()

    def _padded(self, histories: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        seq, lengths = pad_histories(histories, self.model.cfg.max_len, self.model.n_items)
        return seq.to(self.device), lengths.to(self.device)

    def vectors(self, histories: list[np.ndarray], with_mixed: bool = False):
        with torch.no_grad():
            out = self.model.user_vectors(*self._padded(histories), self.tables, with_mixed)
        return tuple(t.cpu() for t in out) if with_mixed else out.cpu()

    def scores(self, histories: list[np.ndarray], domain: int) -> torch.Tensor:
        with torch.no_grad():
            return self.model.rank_scores(*self._padded(histories), domain, self.tables).cpu()


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


def fit(model: DualGraphModel, dataset: Dataset, cfg: FitConfig, name: str = "model",
        device: torch.device | str | None = None) -> FitResult:
    """Train `model` on `device` (None: where it is) and leave it there, in eval mode with
    its best valid epoch's weights. Batches are cut on the CPU (the same ones on every
    device), then moved to the device."""
    cfg.validate()
    if device is not None:
        to_device(model, device)
    device = model_device(model)
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
            inputs, labels, extra = (t[idx].to(device) for t in (data.inputs, data.labels, data.extra))
            width = int((inputs != model.n_items).sum(1).max())  # trim the batch's padding
            # models guided by per-user data (LLM4CDSR's profiles) also get each row's user
            by_user = {"users": data.users[idx].to(device)} if getattr(model, "uses_user_ids", False) else {}
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
            tqdm.write(f"{name} epoch {epoch}: loss {record['total']:.4f}  valid {cfg.select_metric} {score:.4f}"
                       f"  HR@10 {valid['overall']['HR@10']:.4f}")
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
