"""User-retrieval benchmark (urllm/methods/retrieval.py): exact and approximate faiss indexes.

    .venv/bin/python benchmarks/retrieval.py [--large-n 1000000] [--hnsw-m 16] [--nlist 1024]

(a) 10,000 random unit users, d=64, 1,000 random unit queries, k=10: numpy_topk vs a raw
    faiss IndexFlatIP (default OpenMP threads, and 1 thread) vs UserIndex(flat) (faiss
    plus the self/duplicate filtering; one query runs single-threaded), per query in ms,
    one query at a time and in one batch, and the share of queries whose neighbour set
    equals numpy's (worst of the two modes). Target: under 1 ms a query, same neighbours.
(b) --large-n random unit vectors, d=128 (float32, generated in chunks of 100k), 200
    random unit queries: exact search (faiss.knn, the ground truth), UserIndex hnsw
    (M = --hnsw-m, efConstruction 40, built single-threaded, see urllm/methods/retrieval.py) and
    UserIndex ivf (nlist = --nlist, k-means on faiss's default sample of 256 * nlist
    vectors): build time, per-query time (queries one at a time) and recall@10, for a few
    search-time settings (efSearch, nprobe) on the same built index.

Uniform random vectors on a 128-d sphere are the worst case for approximate search (all
distances nearly equal, no cluster structure): recall here is a lower bound, not what
real user vectors get. Target on the 2-core dev machine: the whole script in ~10 minutes.
Same seed, same neighbours (timings vary).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from urllm.methods.retrieval import RetrievalConfig, UserIndex, numpy_topk  # noqa: E402


def unit_rows(rng: np.random.Generator, n: int, d: int, chunk: int = 100_000) -> np.ndarray:
    out = np.empty((n, d), np.float32)
    for s in range(0, n, chunk):
        x = rng.standard_normal((min(chunk, n - s), d), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[s : s + len(x)] = x
    return out


def per_query_ms(fn, queries: np.ndarray, one_at_a_time: bool) -> tuple[float, np.ndarray]:
    """(ms per query, neighbour ids [q, k]) of fn(queries) -> ids."""
    start = time.perf_counter()
    if one_at_a_time:
        ids = np.concatenate([fn(queries[i : i + 1]) for i in range(len(queries))])
    else:
        ids = fn(queries)
    return (time.perf_counter() - start) * 1000 / len(queries), ids


def same_sets(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([set(x) == set(y) for x, y in zip(a, b)]))


def recall(approx: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(x) & set(y)) / len(y) for x, y in zip(approx, exact)]))


def one_thread(fn, *args):
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return fn(*args)
    finally:
        faiss.omp_set_num_threads(previous)


def part_a(k: int = 10) -> None:
    rng = np.random.default_rng(0)
    users, queries = unit_rows(rng, 10_000, 64), unit_rows(rng, 1_000, 64)
    flat = faiss.IndexFlatIP(64)
    flat.add(users)
    index = UserIndex.build(users, np.arange(len(users)), RetrievalConfig(index="flat"))
    methods = {
        "numpy_topk": lambda q: numpy_topk(users, q, k)[1],
        f"faiss IndexFlatIP, {faiss.omp_get_max_threads()} thr": lambda q: flat.search(q, k)[1],
        "faiss IndexFlatIP, 1 thr": lambda q: one_thread(flat.search, q, k)[1],
        "UserIndex(flat)": lambda q: index.search(q, k)[1],
    }
    print(f"(a) exact search: {len(users):,} users, d=64, {len(queries):,} queries, k={k}, "
          f"faiss threads={faiss.omp_get_max_threads()}")
    print(f"    {'method':<26}{'1 at a time ms/q':>18}{'batched ms/q':>14}{'same set as numpy':>19}")
    ref = None
    for name, fn in methods.items():
        single, ids1 = per_query_ms(fn, queries, True)
        batched, ids = per_query_ms(fn, queries, False)
        ref = ids if ref is None else ref
        print(f"    {name:<26}{single:>18.3f}{batched:>14.4f}"
              f"{min(same_sets(ids, ref), same_sets(ids1, ref)):>19.3f}")


def part_b(n: int, hnsw_m: int, nlist: int, n_queries: int = 200, k: int = 10) -> None:
    rng = np.random.default_rng(1)
    t = time.perf_counter()
    base, queries = unit_rows(rng, n, 128), unit_rows(rng, n_queries, 128)
    print(f"\n(b) approximate search: {n:,} random unit vectors, d=128 ({base.nbytes / 2**20:.0f} MiB, "
          f"generated in {time.perf_counter() - t:.1f} s), {n_queries} queries, recall@{k} vs exact")
    ids = np.arange(n)
    rows = []

    t = time.perf_counter()
    _, exact = faiss.knn(queries, base, k, metric=faiss.METRIC_INNER_PRODUCT)
    exact_ms = (time.perf_counter() - t) * 1000 / n_queries
    rows.append(("exact (faiss.knn, batched)", "-", 0.0, exact_ms, 1.0))

    def measure(label, cfg, settings, param):
        t0 = time.perf_counter()
        index = UserIndex.build(base, ids, cfg)
        built = time.perf_counter() - t0
        for value in settings:
            index.tune(**{param: value})
            ms, got = per_query_ms(lambda q: index.search(q, k)[1], queries, True)
            rows.append((label, f"{param}={value}", built, ms, recall(got, exact)))
            print(f"    [{time.strftime('%H:%M:%S')}] {label} {param}={value} done", flush=True)

    measure(f"hnsw M={hnsw_m} efC=40", RetrievalConfig(index="hnsw", hnsw_m=hnsw_m), (64, 256, 1024), "ef_search")
    eff = min(nlist, max(1, n // 39))
    measure(f"ivf nlist={eff}", RetrievalConfig(index="ivf", nlist=nlist), (16, 64, 256), "nprobe")

    print(f"    {'index':<28}{'search':<16}{'build s':>9}{'ms/query':>10}{'recall@10':>11}")
    for label, setting, built, ms, rec in rows:
        print(f"    {label:<28}{setting:<16}{built:>9.1f}{ms:>10.3f}{rec:>11.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--large-n", type=int, default=1_000_000)
    ap.add_argument("--hnsw-m", type=int, default=16)
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--skip-a", action="store_true")
    args = ap.parse_args()
    start = time.perf_counter()
    print(f"faiss {faiss.__version__}, numpy {np.__version__}")
    if not args.skip_a:
        part_a()
    part_b(args.large_n, args.hnsw_m, args.nlist)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
