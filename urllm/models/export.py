"""What stage 1 hands to the later stages and the app, in one run folder:

- `<name>.safetensors` + `<name>.config.json`: the model's weights and its config
  (`<name>.json` is the method's test metrics, written by the pipeline);
- `stage1_vectors.safetensors`: `items` [N, d] (the mixed item table the user vectors
  score against), and per split `users_<split>` [n_lines, 2, d], the domain-specific
  user vector (paper Eq. 14) after each line's history for target domain A and B
  (rows in the split's line order), and `users_mixed_<split>` [n_lines, d], the mixed
  thread alone (the retrieval ablation);
- `stage1_rankings.safetensors`: `test_top` [n_test_lines, top_n] and `valid_top`
  [n_valid_lines, top_n], each line's best `top_n` items of its target domain, best
  first (the refinement fallback, the candidate list of the constrained decoder, and
  the list the LLM's answers are fused with; the fusion weight is chosen on valid).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from urllm.data.dataset import SPLITS, Dataset
from urllm.io import atomic_save_tensors, atomic_write_text
from urllm.models.dual_graph import DualGraphConfig, DualGraphModel
from urllm.models.evaluation import rank_examples
from urllm.models.trainer import SequenceScorer


def save_model(model: DualGraphModel, run_dir: Path, name: str) -> list[Path]:
    weights, config = run_dir / f"{name}.safetensors", run_dir / f"{name}.config.json"
    atomic_save_tensors(weights, dict(model.state_dict()))
    atomic_write_text(config, json.dumps(dataclasses.asdict(model.cfg), indent=2) + "\n")
    return [weights, config]


def load_model(run_dir: Path, name: str, item_domain: torch.Tensor, graphs) -> DualGraphModel:
    from safetensors.torch import load_file

    cfg = DualGraphConfig(**json.loads((run_dir / f"{name}.config.json").read_text()))
    model = DualGraphModel(cfg, item_domain, graphs)
    model.load_state_dict(load_file(run_dir / f"{name}.safetensors"))
    return model.eval()


def export_stage1(model: DualGraphModel, dataset: Dataset, run_dir: Path, top_n: int = 100, batch_size: int = 512) -> list[Path]:
    scorer = SequenceScorer(model)
    vectors = {"items": scorer.tables.mixed[: model.n_items]}
    for split in SPLITS:
        histories = [ex.history for ex in dataset.splits.get(split, [])]
        parts = [scorer.vectors(histories[s : s + batch_size], True) for s in range(0, len(histories), batch_size)]
        d = model.cfg.dim
        vectors[f"users_{split}"] = torch.cat([p[0] for p in parts]) if parts else torch.zeros(0, 2, d)
        vectors[f"users_mixed_{split}"] = torch.cat([p[1] for p in parts]) if parts else torch.zeros(0, d)
    rankings = {}
    for split in ("valid", "test"):
        _, _, top = rank_examples(scorer, dataset, dataset.splits.get(split, []), batch_size, top_n=top_n)
        rankings[f"{split}_top"] = torch.from_numpy(top)
    paths = [run_dir / "stage1_vectors.safetensors", run_dir / "stage1_rankings.safetensors"]
    atomic_save_tensors(paths[0], vectors)
    atomic_save_tensors(paths[1], rankings)
    return paths
