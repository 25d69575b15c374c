"""SASRec tuned on the valid split: every point of a small seeded grid (urllm.models.config.
SASRecConfig) trained with full-softmax cross-entropy and early stopping on valid; the
point with the best valid score is kept. The test split is never looked at.

    model, result, report = tune_sasrec(dataset, SASRecConfig(), seed=0)

SASRec is the dual-graph model's code with the graphs, the domain threads and the extra
losses switched off (urllm.models.dual_graph.sasrec_config), so the two differ only in
what the paper adds.
"""
from __future__ import annotations

import time

import torch

from urllm.data.dataset import Dataset
from urllm.models.config import FitConfig, SASRecConfig
from urllm.models.dual_graph import DualGraphModel, sasrec_config
from urllm.models.trainer import FitResult, fit
from urllm.seed import seed_everything


def point_model(dataset: Dataset, cfg: SASRecConfig, point: dict) -> DualGraphModel:
    model_cfg = sasrec_config(dim=point["dim"], n_blocks=point["n_blocks"], n_heads=cfg.n_heads, dropout=point["dropout"],
                              max_len=point["max_len"], negatives=cfg.negatives)
    return DualGraphModel(model_cfg, torch.from_numpy(dataset.item_domain), None)


def tune_sasrec(dataset: Dataset, cfg: SASRecConfig, seed: int = 0, device: torch.device | str | None = None,
                select_metric: str = "MRR", progress: bool = True) -> tuple[DualGraphModel, FitResult, dict]:
    """(the best point's model in eval mode with its best epoch's weights, its FitResult,
    a report {"grid": [point + valid scores + best_epoch + seconds], "chosen": point,
    "select_metric", "seconds"}). Every point starts from the same seed."""
    cfg.validate()
    start = time.perf_counter()
    best: tuple[float, DualGraphModel, FitResult, dict] | None = None
    grid = []
    for point in cfg.points():
        seed_everything(seed)
        model = point_model(dataset, cfg, point)
        fit_cfg = FitConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=point["lr"], patience=cfg.patience,
                            select_metric=select_metric, seed=seed, progress=progress)
        result = fit(model, dataset, fit_cfg, f"sasrec {point}", device)
        score = result.best_valid["overall"][select_metric]
        grid.append(point | {f"valid_{m}": round(result.best_valid["overall"][m], 4) for m in ("HR@10", "MRR")}
                    | {"best_epoch": result.best_epoch, "seconds": round(result.seconds, 1)})
        if best is None or score > best[0]:  # ties keep the earlier point
            best = (score, model, result, point)
        else:
            del model
    _, model, result, point = best
    return model, result, {"grid": grid, "chosen": point, "select_metric": select_metric,
                           "seconds": round(time.perf_counter() - start, 1)}
