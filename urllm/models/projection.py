"""2-D projections of item and user vectors for the app's embeddings page (UMAP).

Input: the stage-1 vectors (see urllm/models/export.py): `items` [N, d] with each item's
domain, and one user vector a line [n_lines, d] with the line's target domain (e.g.
`users_test[i, line_domain[i]]`). Items and users are projected separately (two UMAP
fits), each on at most `max_points` rows, a seeded sample; `project_run` returns flat
arrays for one safetensors file (`items_rows`, `items_xy`, `items_domain`, `users_rows`,
`users_xy`, `users_domain`), where `*_rows` index into the inputs so the app can join
item titles / user ids.

UMAP (umap-learn, metric "cosine") runs with `random_state=seed` and `n_jobs=1`: single-
threaded and deterministic, same input and seed, same output on the same machine.
`n_neighbors` is clamped to n - 1. With fewer than 4 rows UMAP is not used: the layout is
then PCA via numpy SVD of the centred rows (first two components, scaled by their singular
values, each column's sign fixed so its largest-magnitude entry is positive, zero-padded
to 2 columns). Rows with NaN / inf raise ValueError.

Cost: the first UMAP call in a process compiles umap's numba kernels (not cached across
processes), and the first call with >= 4096 rows (where umap switches from exact
neighbours to pynndescent) compiles more; so train.py computes projections once per run
and the app reads them.

    from urllm.models.projection import ProjectionConfig, project
    rows, xy = project(vectors, ProjectionConfig(max_points=2000))
"""
from __future__ import annotations

import numpy as np

from urllm.models.config import ProjectionConfig

MIN_UMAP_POINTS = 4


def _check(vectors: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(vectors)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D [n, d], got shape {x.shape}")
    if x.shape[0] and x.shape[1] < 1:
        raise ValueError(f"{name} has no columns (shape {x.shape})")
    x = x.astype(np.float32, copy=False)
    bad = int((~np.isfinite(x).all(axis=1)).sum()) if x.size else 0
    if bad:
        raise ValueError(f"{name}: {bad} of {x.shape[0]} rows contain NaN or inf")
    return x


def sample_rows(n: int, max_points: int, seed: int) -> np.ndarray:
    """Sorted row indices, all n rows or a seeded sample of `max_points` without replacement."""
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_points, replace=False)).astype(np.int64)


def pca_layout(x: np.ndarray) -> np.ndarray:
    """The small-n fallback: PCA via SVD, signs fixed, zero-padded to [n, 2] float32."""
    out = np.zeros((x.shape[0], 2), dtype=np.float32)
    if x.shape[0] == 0:
        return out
    centred = x.astype(np.float64) - x.astype(np.float64).mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    k = min(2, s.shape[0])
    comps = u[:, :k] * s[:k]
    for j in range(k):
        col = comps[:, j]
        if col[np.argmax(np.abs(col))] < 0:
            comps[:, j] = -col
    out[:, :k] = comps
    return out


def project(vectors: np.ndarray, cfg: ProjectionConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rows int64 [m] sorted, xy float32 [m, 2]): a 2-D layout of `vectors[rows]`."""
    cfg = (cfg or ProjectionConfig()).validate()
    x = _check(vectors, "vectors")
    rows = sample_rows(x.shape[0], cfg.max_points, cfg.seed)
    sub = x[rows]
    if sub.shape[0] < MIN_UMAP_POINTS:
        return rows, pca_layout(sub)
    import umap  # slow import (numba); only when needed

    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=min(cfg.n_neighbors, sub.shape[0] - 1),
        min_dist=float(cfg.min_dist),
        metric="cosine",
        random_state=cfg.seed,
        n_jobs=1,  # what random_state forces anyway; passing it avoids umap's warning
    )
    xy = np.ascontiguousarray(reducer.fit_transform(sub), dtype=np.float32)
    return rows, xy


def project_run(
    item_vectors: np.ndarray,
    item_domain: np.ndarray,
    user_vectors: np.ndarray,
    line_domains: np.ndarray,
    cfg: ProjectionConfig | None = None,
) -> dict[str, np.ndarray]:
    """Items and users projected separately; flat arrays for one safetensors file."""
    cfg = (cfg or ProjectionConfig()).validate()
    out: dict[str, np.ndarray] = {}
    for key, vecs, dom in (("items", item_vectors, item_domain), ("users", user_vectors, line_domains)):
        dom = np.asarray(dom)
        if dom.ndim != 1 or dom.shape[0] != np.shape(vecs)[0]:
            raise ValueError(f"{key}: {dom.shape} domain labels for {np.shape(vecs)} vectors")
        rows, xy = project(vecs, cfg)
        out[f"{key}_rows"] = rows
        out[f"{key}_xy"] = xy
        out[f"{key}_domain"] = dom[rows].astype(np.int64)
    return out
