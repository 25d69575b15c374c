"""2-D projections of item and user vectors for the app's embeddings page (UMAP), and each
projected point's nearest neighbours (faiss).

`project(vectors, cfg)` lays out one set of vectors (an "embedding space": the dual-graph
item table, the MiniLM title embeddings, users' domain-specific vectors, ...) on at most
`max_points` rows, a seeded sample; `nearest_neighbours(vectors, k)` gives each row its k
most similar other rows by cosine (inner product of L2-normalised rows, exact faiss
IndexFlatIP), never the row itself; `project_space` does both for one space, the
neighbours searched among the projected rows. urllm/pipeline/projections.py gathers a
run's spaces and writes them for the app, which then needs neither faiss nor torch.

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

    from urllm.models.projection import ProjectionConfig, project, project_space
    rows, xy = project(vectors, ProjectionConfig(max_points=2000))
    space = project_space(vectors, ProjectionConfig(), k=10)  # rows, xy, nbrs, sims
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


def nearest_neighbours(vectors: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(nbrs int64 [n, k], sims float32 [n, k]): each row's k most cosine-similar other rows,
    best first, by exact inner product of L2-normalised rows (faiss IndexFlatIP). A row is
    never its own neighbour, even when another row equals it; with fewer than k other rows
    the tail is -1 (sims 0). A zero row has cosine 0 with everything."""
    x = _check(vectors, "vectors").copy()
    n = x.shape[0]
    nbrs, sims = np.full((n, k), -1, np.int64), np.zeros((n, k), np.float32)
    kk = min(k, n - 1)
    if kk < 1:
        return nbrs, sims
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    import faiss  # only on the training side: the app reads the table

    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    score, found = index.search(x, kk + 1)  # one more than needed: the row itself is usually first
    keep = found != np.arange(n)[:, None]
    keep[keep.sum(axis=1) > kk, -1] = False  # the row itself was not returned (ties): drop the extra one
    order = np.argsort(~keep, axis=1, kind="stable")[:, :kk]  # kept entries, best first
    nbrs[:, :kk] = np.take_along_axis(found, order, axis=1)
    sims[:, :kk] = np.take_along_axis(score, order, axis=1)
    return nbrs, sims


def project_space(vectors: np.ndarray, cfg: ProjectionConfig | None = None, k: int = 10) -> dict[str, np.ndarray]:
    """One space: `rows` (the projected rows of `vectors`, sorted), `xy` [m, 2] their layout,
    `nbrs` [m, k] each projected row's nearest projected rows as positions in `rows` (-1:
    none) and `sims` [m, k] their cosines."""
    rows, xy = project(vectors, cfg)
    nbrs, sims = nearest_neighbours(np.asarray(vectors)[rows], k)
    return {"rows": rows, "xy": xy, "nbrs": nbrs, "sims": sims}
