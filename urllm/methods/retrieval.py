"""User retrieval (pipeline stage 2): for a target domain X, the training users whose
vectors have the largest inner product with a query user's vector.

The vectors are the stage-1 domain-specific user vectors (paper Eq. 14,
u = H_mixed + H_X at the last position; `users_<split>` [n_lines, 2, d] in
`stage1_vectors.safetensors`, see urllm/models/export.py), or, for the paper's ablation,
the mixed-thread-only vector (`RetrievalConfig.vector = "mixed"`, one [n_lines, d] table
shared by both domains). One `UserIndex` per target domain, built from the TRAINING users;
a search never returns the query user themself and returns each neighbour user once.

Index types (faiss, inner product throughout; vectors are not normalised here):

- "flat": exact `IndexFlatIP` (the default; benchmarks/retrieval.py times it against the
  approximate ones);
- "hnsw": `IndexHNSWFlat`, M = `hnsw_m`, efSearch = `ef_search` (efConstruction: faiss's
  default, 40). Built with ONE OpenMP thread: faiss inserts HNSW nodes concurrently and
  the graph can then depend on thread timing; one thread keeps "same inputs, same index"
  (it costs build time on many-core hosts; on the 2-core dev box it was no slower);
- "ivf": `IndexIVFFlat` over a flat inner-product quantizer, trained (k-means, faiss's
  fixed seed) on the indexed vectors themselves. nlist is lowered to
  max(1, n_users // 39) whenever that is smaller (so with fewer users than `nlist`, and
  also up to 39 * nlist users: faiss wants about 39 training points a centroid and warns
  below that; a hard cut at n_users < nlist would give 1024 users 1024 one-user lists but
  1023 users 26 lists). nprobe is capped at the nlist used.

A search of ONE query runs faiss single-threaded: faiss parallelises over queries, so one
query gains nothing, and on a loaded machine the OpenMP hand-off alone cost many times the
single-threaded search. omp_set_num_threads is per calling thread and is restored.

Files (`UserIndex.save(path)`): `path` is the faiss index (faiss.write_index to a temp
file in the same folder, then renamed: urllm.io.atomic_file), `path + ".json"` holds the
user id of every index row, the config and the SHA-256 of the index file; it is written
last, so `load` can tell a torn pair (index rewritten, json not) and refuses it with a
clear message.

    from urllm.methods.retrieval import RetrievalConfig, build_domain_indexes
    indexes = build_domain_indexes(vectors["users_train"], [ex.user for ex in ds.splits["train"]],
                                   RetrievalConfig(k=3))
    scores, users = indexes[domain].search(query_vectors, exclude=query_user_ids)
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from pathlib import Path

import faiss
import numpy as np

from urllm.io import atomic_file, atomic_write_json
from urllm.methods.config import RetrievalConfig


def _as_matrix(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a 2-d array [n, d], got shape {x.shape}")
    return x


@contextlib.contextmanager
def _omp_threads(n: int):
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def numpy_topk(vectors, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain numpy reference: (scores [q, k] float32, rows [q, k] int64), best first,
    exact inner-product top-k over the rows of `vectors` (ties: lower row first).
    k is capped at the number of rows. Queries are scored in chunks (bounded memory)."""
    vectors, queries = _as_matrix(vectors, "vectors"), _as_matrix(queries, "queries")
    n = len(vectors)
    k = min(int(k), n)
    out_s = np.empty((len(queries), k), np.float32)
    out_i = np.empty((len(queries), k), np.int64)
    chunk = max(1, (1 << 24) // max(n, 1))  # ~64 MB of scores at a time
    for s in range(0, len(queries), chunk):
        scores = queries[s : s + chunk] @ vectors.T
        if k < n:
            part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        else:
            part = np.broadcast_to(np.arange(n), scores.shape)
        top = np.take_along_axis(scores, part, 1)
        order = np.lexsort((part, -top), axis=1)  # by score desc, then row asc
        out_i[s : s + chunk] = np.take_along_axis(part, order, 1)
        out_s[s : s + chunk] = np.take_along_axis(top, order, 1)
    return out_s, out_i


def _new_index(d: int, n: int, cfg: RetrievalConfig) -> tuple[faiss.Index, int]:
    """An empty faiss index for cfg.index; also the nlist actually used (0 if not ivf)."""
    if cfg.index == "flat":
        return faiss.IndexFlatIP(d), 0
    if cfg.index == "hnsw":
        return faiss.IndexHNSWFlat(d, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT), 0
    nlist = min(cfg.nlist, max(1, n // 39))
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.own_fields = True  # the index owns (and frees) its quantizer
    quantizer.this.disown()
    return index, nlist


def _set_search_params(index: faiss.Index, cfg: RetrievalConfig) -> None:
    if cfg.index == "hnsw":
        faiss.downcast_index(index).hnsw.efSearch = cfg.ef_search
    elif cfg.index == "ivf":
        ivf = faiss.extract_index_ivf(index)
        ivf.nprobe = min(cfg.nprobe, ivf.nlist)


class UserIndex:
    """Inner-product index over one target domain's training-user vectors.

    Row r of the index is user `user_ids[r]` (the dataset's user index). A user may own
    several rows; a search returns each user at most once (best row) and never the
    user given in `exclude`."""

    def __init__(self, index: faiss.Index, user_ids: np.ndarray, cfg: RetrievalConfig):
        self.index, self.cfg = index, cfg
        self.user_ids = np.asarray(user_ids, dtype=np.int64)
        if index.ntotal != len(self.user_ids):
            raise ValueError(f"index has {index.ntotal} rows but {len(self.user_ids)} user ids")
        users, counts = np.unique(self.user_ids, return_counts=True)
        self._users, self._counts = users, counts
        self._max_rows = int(counts.max()) if len(counts) else 0
        _set_search_params(index, cfg)

    def tune(self, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Change the search-time settings (ivf nprobe, hnsw efSearch) without rebuilding."""
        changes = {k: v for k, v in (("nprobe", nprobe), ("ef_search", ef_search)) if v is not None}
        cfg = dataclasses.replace(self.cfg, **changes)
        cfg.validate()
        self.cfg = cfg
        _set_search_params(self.index, cfg)

    @property
    def dim(self) -> int:
        return self.index.d

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @classmethod
    def build(cls, vectors, user_ids, cfg: RetrievalConfig | None = None) -> UserIndex:
        """Index `vectors` [n, d] (row r belongs to user `user_ids[r]`)."""
        cfg = cfg or RetrievalConfig()
        cfg.validate()
        vectors = _as_matrix(vectors, "vectors")
        user_ids = np.asarray(user_ids, dtype=np.int64).reshape(-1)
        if len(user_ids) != len(vectors):
            raise ValueError(f"{len(vectors)} vectors but {len(user_ids)} user ids")
        if (user_ids < 0).any():
            raise ValueError("user ids must be >= 0 (-1 marks padding in search results)")
        index, _ = _new_index(vectors.shape[1], len(vectors), cfg)
        if len(vectors):
            if cfg.index == "ivf":
                index.train(vectors)
            if cfg.index == "hnsw":
                with _omp_threads(1):  # deterministic graph (see module docstring)
                    index.add(vectors)
            else:
                index.add(vectors)
        return cls(index, user_ids, cfg)

    def _rows_of(self, users: np.ndarray) -> np.ndarray:
        """How many index rows each of `users` owns (0 for unknown users)."""
        if len(self._users) == 0:
            return np.zeros(len(users), np.int64)
        pos = np.clip(np.searchsorted(self._users, users), 0, len(self._users) - 1)
        return np.where(self._users[pos] == users, self._counts[pos], 0)

    def search(self, queries, k: int | None = None, exclude=None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k neighbour users of each query: (scores [q, k] float32, user ids [q, k]
        int64), best first. `exclude`: one user id per query (the query user, never
        returned; -1 or None for none). Missing neighbours: id -1, score -inf."""
        k = self.cfg.k if k is None else int(k)
        if k < 1:
            raise ValueError(f"k={k}: must be >= 1")
        queries = _as_matrix(queries, "queries")
        if queries.shape[1] != self.dim:
            raise ValueError(f"queries have dimension {queries.shape[1]}, the index {self.dim}")
        q = len(queries)
        exclude = np.full(q, -1, np.int64) if exclude is None else np.asarray(exclude, np.int64).reshape(-1)
        if len(exclude) != q:
            raise ValueError(f"{q} queries but {len(exclude)} excluded user ids")
        out_s = np.full((q, k), -np.inf, np.float32)
        out_u = np.full((q, k), -1, np.int64)
        if q == 0 or len(self) == 0:
            return out_s, out_u
        # enough rows that k distinct non-excluded users survive (exact search)
        own = int(self._rows_of(exclude).max())
        wanted = min(len(self), k * self._max_rows + own)
        # One query gains nothing from faiss's per-query OpenMP parallelism, and on a busy
        # machine waiting for the idle worker threads costs milliseconds (see the benchmark).
        with _omp_threads(1) if q == 1 else contextlib.nullcontext():
            scores, rows = self.index.search(queries, wanted)
        users = np.where(rows >= 0, self.user_ids[np.maximum(rows, 0)], -1)
        keep = (rows >= 0) & (users != exclude[:, None])
        if self._max_rows > 1:  # drop later (lower-scored) rows of a user already seen
            same = users[:, :, None] == users[:, None, :]
            keep &= ~np.tril(same, -1).any(2)
        slot = np.cumsum(keep, 1) - 1
        keep &= slot < k
        qi, ci = np.nonzero(keep)
        out_s[qi, slot[qi, ci]] = scores[qi, ci]
        out_u[qi, slot[qi, ci]] = users[qi, ci]
        return out_s, out_u

    # ---- files ---------------------------------------------------------------------
    def save(self, path: str | Path) -> list[Path]:
        """Write `path` (faiss index) and `path.json` (user ids, config, index hash), both atomically."""
        path = Path(path)
        with atomic_file(path) as tmp:
            faiss.write_index(self.index, str(tmp))
            digest = _sha256(tmp)
        meta = path.with_name(path.name + ".json")
        atomic_write_json(meta, {"config": dataclasses.asdict(self.cfg), "sha256": digest,
                                 "ntotal": len(self), "user_ids": self.user_ids.tolist()})
        return [path, meta]

    @classmethod
    def load(cls, path: str | Path) -> UserIndex:
        path = Path(path)
        meta_path = path.with_name(path.name + ".json")
        for p in (path, meta_path):
            if not p.is_file():
                raise FileNotFoundError(f"user index file missing: {p}")
        meta = json.loads(meta_path.read_text())
        if meta.get("sha256") != _sha256(path):
            raise ValueError(f"{path}: the index file does not match {meta_path.name} (interrupted save?); rebuild it")
        cfg = RetrievalConfig(**meta["config"])
        return cls(faiss.read_index(str(path)), np.asarray(meta["user_ids"], np.int64), cfg)


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_domain_indexes(user_vectors, user_ids, cfg: RetrievalConfig | None = None) -> list[UserIndex]:
    """[index for target domain A, index for target domain B].

    `user_vectors`: [n_lines, 2, d] (torch or numpy), column X = the user vector for
    target domain X; with cfg.vector == "mixed" a single [n_lines, d] table (the
    mixed-thread vector) is also accepted and serves both domains. `user_ids` [n_lines]:
    the dataset user index of each line. A user with several lines is indexed once,
    with their FIRST line."""
    cfg = cfg or RetrievalConfig()
    cfg.validate()
    if hasattr(user_vectors, "detach"):
        user_vectors = user_vectors.detach().cpu().numpy()
    user_vectors = np.asarray(user_vectors, dtype=np.float32)
    user_ids = np.asarray(user_ids, dtype=np.int64).reshape(-1)
    if user_vectors.ndim == 2 and cfg.vector == "mixed":
        user_vectors = np.repeat(user_vectors[:, None, :], 2, axis=1)
    if user_vectors.ndim != 3 or user_vectors.shape[1] != 2:
        raise ValueError(f"user_vectors: expected [n_lines, 2, d], got shape {user_vectors.shape}"
                         + (" ([n_lines, d] only with vector='mixed')" if user_vectors.ndim == 2 else ""))
    if len(user_ids) != len(user_vectors):
        raise ValueError(f"{len(user_vectors)} user vector rows but {len(user_ids)} user ids")
    _, first = np.unique(user_ids, return_index=True)
    first = np.sort(first)  # keep the lines' order
    return [UserIndex.build(user_vectors[first, x], user_ids[first], cfg) for x in (0, 1)]


def nearest_users(indexes: list[UserIndex], vectors, split: str, row: int, domain: int, user: int, k: int,
                  vector: str = "domain") -> list[tuple[int, float]]:
    """(user id, inner-product score) of the k users nearest to one line in its target
    domain's index (`indexes[domain]`), best first, never the line's own `user`; [] for
    k < 1. The query is row `row` of stage 1's export `vectors` (torch or numpy):
    `users_<split>` [n, 2, d] at the target domain (Eq. 14), or `users_mixed_<split>`
    [n, d] for vector="mixed" (the ablation). The pipeline and the app both ask this."""
    if k < 1:
        return []
    query = vectors[f"users_{split}"][row, domain] if vector == "domain" else vectors[f"users_mixed_{split}"][row]
    scores, users = indexes[domain].search(query.reshape(1, -1), k, exclude=np.array([user]))
    return [(int(u), float(s)) for u, s in zip(users[0], scores[0]) if u >= 0]
