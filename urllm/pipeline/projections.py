"""The projections stage's work: a run's embedding spaces, each laid out by UMAP with every
projected point's nearest neighbours (urllm/models/projection.py), in two files the app reads:

- `projections.json`: {"k", "spaces": [{"name", "label", "kind", "points", "dim"}]}, one entry
  per space the run has;
- `projections.safetensors`: per space "<name>.rows|xy|domain|nbrs|sims" (+ ".line" for
  users spaces), shapes in urllm/schema.py (PROJECTION_TENSORS).

The spaces (a space whose file the run lacks is left out):
  dual_graph_items  the dual-graph model's mixed item table (stage1_vectors `items`)
  minilm_items      the MiniLM title embeddings (item_text_minilm.safetensors, profiles / llm4cdsr stages)
  llm4cdsr_items    LLM4CDSR's adapted item table (llm4cdsr_items.safetensors)
  rsllm_items       the dual-graph items through RSLLM's item projector (rsllm/projectors.safetensors)
  users_domain      test lines by their Eq. 14 vector for their target domain, and every training user
                    retrieval can return, once per target domain (its index's vector: first training line)
  users_mixed       the same users by their mixed-thread vector (training users once, domain -1)

    files, summary = write_projections(run_dir, ds, vectors, ProjectionConfig(...), k=10)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from urllm.data import Dataset
from urllm.io import atomic_save_tensors, atomic_write_json
from urllm.models.config import ProjectionConfig
from urllm.models.projection import project_space

NEIGHBOURS = 10  # nearest neighbours kept per projected point


@dataclass
class Space:
    name: str
    label: str
    kind: str  # "items" or "users"
    vectors: np.ndarray  # [n, d]
    rows: np.ndarray  # [n] item id, or a users point's user index
    domain: np.ndarray  # [n] item domain / target domain (-1: none)
    line: np.ndarray | None = None  # [n] users spaces: test line index, -1 for a training user


def _np(t) -> np.ndarray:
    return t.detach().float().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, np.float32)


def _item_space(name: str, label: str, vectors, ds: Dataset) -> Space:
    x = _np(vectors)
    if x.ndim != 2 or len(x) != ds.n_items:
        raise ValueError(f"{name}: expected [{ds.n_items}, d] item vectors, got {x.shape}")
    return Space(name, label, "items", x, np.arange(ds.n_items), ds.item_domain.astype(np.int64))


def _user_spaces(ds: Dataset, vectors: dict) -> list[Space]:
    test = ds.splits["test"]
    n = len(test)
    test_user = np.array([ex.user for ex in test], np.int64)
    test_dom = np.array([ex.domain for ex in test], np.int64)
    train_user = np.array([ex.user for ex in ds.splits["train"]], np.int64)
    first = np.sort(np.unique(train_user, return_index=True)[1])  # as urllm.methods.retrieval indexes them
    users, m = train_user[first], len(first)
    domain_vecs, mixed_vecs = _np(vectors["users_train"])[first], _np(vectors["users_mixed_train"])[first]
    lines = np.concatenate([np.arange(n), np.full(2 * m, -1)])
    specific = Space("users_domain", "Users: domain-specific vectors (Eq. 14)", "users",
                     np.concatenate([_np(vectors["users_test"])[np.arange(n), test_dom], domain_vecs[:, 0], domain_vecs[:, 1]]),
                     np.concatenate([test_user, users, users]), np.concatenate([test_dom, np.zeros(m, np.int64), np.ones(m, np.int64)]),
                     lines)
    mixed = Space("users_mixed", "Users: mixed-thread vectors", "users",
                  np.concatenate([_np(vectors["users_mixed_test"]), mixed_vecs]), np.concatenate([test_user, users]),
                  np.concatenate([test_dom, np.full(m, -1)]), lines[: n + m])
    return [specific, mixed]


def _tensor(path: Path, key: str):
    from safetensors.torch import load_file

    return load_file(path)[key] if path.is_file() else None


def run_spaces(run_dir: Path, ds: Dataset, vectors: dict) -> list[Space]:
    """Every space the run folder has the vectors of (module docstring), in display order."""
    spaces = [_item_space("dual_graph_items", "Dual-graph item table", vectors["items"], ds)]
    minilm = _tensor(run_dir / "item_text_minilm.safetensors", "embeddings")
    if minilm is not None:
        spaces.append(_item_space("minilm_items", "MiniLM title embeddings", minilm, ds))
    adapted = _tensor(run_dir / "llm4cdsr_items.safetensors", "items")
    if adapted is not None:
        spaces.append(_item_space("llm4cdsr_items", "LLM4CDSR adapted items", adapted, ds))
    if (run_dir / "rsllm" / "projectors.safetensors").is_file():
        from urllm.methods.rsllm_run import load_item_projector

        projector, _ = load_item_projector(run_dir / "rsllm")
        with torch.no_grad():
            projected = projector(vectors["items"].float())
        spaces.append(_item_space("rsllm_items", "RSLLM projected items", projected, ds))
    return spaces + _user_spaces(ds, vectors)


def write_projections(run_dir: Path, ds: Dataset, vectors: dict, cfg: ProjectionConfig,
                      k: int = NEIGHBOURS, n_jobs: int = 1) -> tuple[list[Path], dict]:
    """Lay out every space of the run and write projections.safetensors, then projections.json
    (the app reads the JSON first: written last, it never names a space the tensors lack).
    `n_jobs` processes lay out spaces side by side (joblib): each UMAP is single-threaded and
    seeded, so the layouts are the same as one after the other."""
    from joblib import Parallel, delayed

    spaces = run_spaces(Path(run_dir), ds, vectors)
    jobs = min(max(1, n_jobs), len(spaces))
    outs = Parallel(n_jobs=jobs)(delayed(project_space)(space.vectors, cfg, k) for space in spaces) if jobs > 1 else \
        [project_space(space.vectors, cfg, k) for space in spaces]
    tensors, listing, summary = {}, [], {}
    for space, out in zip(spaces, outs):
        rows = out["rows"]
        arrays = {"rows": space.rows[rows], "xy": out["xy"], "domain": space.domain[rows],
                  "nbrs": out["nbrs"], "sims": out["sims"]}
        if space.line is not None:
            arrays["line"] = space.line[rows]
        tensors |= {f"{space.name}.{key}": torch.from_numpy(np.ascontiguousarray(v)) for key, v in arrays.items()}
        listing.append({"name": space.name, "label": space.label, "kind": space.kind, "points": len(space.vectors),
                        "dim": int(space.vectors.shape[1])})
        summary[space.name] = len(rows)
    files = [Path(run_dir) / "projections.safetensors", Path(run_dir) / "projections.json"]
    atomic_save_tensors(files[0], tensors)
    atomic_write_json(files[1], {"k": k, "spaces": listing})
    return files, summary
