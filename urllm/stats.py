"""Statistics for every figure (DESIGN 2.7): per-line metric values, 95% confidence
intervals from a seeded bootstrap over test lines, and paired tests between two methods
on the SAME lines. numpy only (no torch), so train.py, the benchmarks and the app share it.

    values = line_values(ranks)                     # {metric: [n]} from 1-based full ranks
    ci = bootstrap_ci(values, seed=0)               # {metric: (lo, hi)}
    diff = paired_test(values_a, values_b, seed=0)  # {metric: {"delta", "p", "ci95"}}
    table = compare(ranks_by_method, domains, ("art", "office"))   # what the manifest holds

Why plain numpy and not scipy.stats.bootstrap: every metric is a mean of per-line values,
so one matrix of resample counts [B, n] gives every metric's B means in one product
(milliseconds for 2,000 lines), the same resamples for every method (so intervals of
methods on the same lines are comparable), and a percentile interval that is simply
[x, x] for a constant metric, where scipy's default BCa warns and returns NaN.

The paired test is a sign-flip permutation test on the per-line differences a - b: under
"no difference", each line's difference is as likely to have either sign. p is two-sided,
(1 + #{|mean of flipped| >= |observed mean|}) / (1 + flips), so identical methods get
p = 1 and no test claims p = 0. Its interval is a paired bootstrap of the mean difference.
"""
from __future__ import annotations

import numpy as np

CUTOFFS_HR = (1, 5, 10, 20)
CUTOFFS_NDCG = (5, 10, 20)
METRIC_NAMES = tuple([f"HR@{k}" for k in CUTOFFS_HR] + [f"NDCG@{k}" for k in CUTOFFS_NDCG] + ["MRR"])
BOOTSTRAPS = 2000  # resamples per interval: the interval's ends move by well under 1% of its width between seeds
FLIPS = 10000  # sign flips per paired test: p is resolved to about 1e-4
LEVEL = 0.95
REFERENCE = "dual_graph"  # every method is tested against the dual-graph model


def line_values(ranks) -> dict[str, np.ndarray]:
    """Each metric's value on each line, from 1-based full ranks (inf: never ranked)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out = {f"HR@{k}": (ranks <= k).astype(np.float64) for k in CUTOFFS_HR}
    gain = 1.0 / np.log2(ranks + 1.0)
    out |= {f"NDCG@{k}": np.where(ranks <= k, gain, 0.0) for k in CUTOFFS_NDCG}
    out["MRR"] = 1.0 / ranks
    return out


def _matrix(values: dict[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    names = list(values)
    return names, np.stack([np.asarray(values[m], np.float64) for m in names], axis=1) if names else np.zeros((0, 0))


def _counts(n: int, resamples: int, seed: int) -> np.ndarray:
    """[resamples, n] how often each line is drawn in each bootstrap resample."""
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    flat = (draws + np.arange(resamples)[:, None] * n).ravel()  # one bincount for every resample at once
    return np.bincount(flat, minlength=resamples * n).reshape(resamples, n).astype(np.float64)


def _interval(means: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail], axis=0)
    return lo, hi


def bootstrap_ci(values: dict[str, np.ndarray], seed: int = 0, resamples: int = BOOTSTRAPS,
                 level: float = LEVEL) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of each metric's mean over lines; the same seed gives
    the same resamples (for every method on the same lines) and the same interval."""
    names, x = _matrix(values)
    n = x.shape[0]
    if n == 0:
        return {m: (float("nan"), float("nan")) for m in names}
    means = _counts(n, resamples, seed) @ x / n
    lo, hi = _interval(means, level)
    mean = x.mean(axis=0)  # guard against float noise putting the mean of a constant outside [lo, hi]
    return {m: (float(min(lo[j], mean[j])), float(max(hi[j], mean[j]))) for j, m in enumerate(names)}


def paired_test(a: dict[str, np.ndarray], b: dict[str, np.ndarray], seed: int = 0, flips: int = FLIPS,
                resamples: int = BOOTSTRAPS, level: float = LEVEL) -> dict[str, dict]:
    """a - b on the same lines, per metric: {"delta": mean difference, "p": two-sided
    sign-flip p-value, "ci95": paired bootstrap interval of the difference}."""
    names = [m for m in a if m in b]
    _, xa = _matrix({m: a[m] for m in names})
    _, xb = _matrix({m: b[m] for m in names})
    if xa.shape != xb.shape:
        raise ValueError(f"paired test needs the same lines: {xa.shape[0]} vs {xb.shape[0]} values")
    n = xa.shape[0]
    if n == 0:
        return {m: {"delta": float("nan"), "p": float("nan"), "ci95": [float("nan"), float("nan")]} for m in names}
    d = xa - xb
    observed = d.mean(axis=0)
    rng = np.random.default_rng(seed)
    signs = (rng.integers(0, 2, size=(flips, n), dtype=np.int8) * 2 - 1).astype(np.float64)
    flipped = np.abs(signs @ d / n)
    # a tolerance so float rounding of equal sums does not count as "smaller"
    extreme = (flipped >= np.abs(observed) - 1e-12).sum(axis=0)
    p = (1 + extreme) / (1 + flips)
    lo, hi = _interval(_counts(n, resamples, seed) @ d / n, level)
    return {m: {"delta": float(observed[j]), "p": float(p[j]),
                "ci95": [float(min(lo[j], observed[j])), float(max(hi[j], observed[j]))]} for j, m in enumerate(names)}


def common_lines(ranks_by_method: dict[str, np.ndarray]) -> np.ndarray:
    """Mask of the lines every method was scored on (a rank is NaN where it was not)."""
    masks = [~np.isnan(np.asarray(r, np.float64)) for r in ranks_by_method.values()]
    return np.logical_and.reduce(masks) if masks else np.zeros(0, bool)


def _rounded(x: float) -> float:
    return round(float(x), 6)


def _tables(ranks_by_method: dict[str, np.ndarray], domains: np.ndarray, domain_names, reference: np.ndarray | None,
            seed: int) -> dict:
    """Per method, per scope ("overall" and each domain): the metrics, n, "ci95" and, with
    the reference's ranks on the same lines, "vs_dual_graph". One bootstrap and one paired
    test per scope serve every method (same resamples, one matrix product), so 11 methods
    on 2,000 lines take well under a second rather than one test per method."""
    domains = np.asarray(domains)
    out: dict = {m: {} for m in ranks_by_method}
    scopes = [("overall", np.ones(len(domains), bool))] + [(name, domains == d) for d, name in enumerate(domain_names)]
    for scope, mask in scopes:
        n = int(mask.sum())
        values = {(m, k): v for m, r in ranks_by_method.items() for k, v in line_values(np.asarray(r, np.float64)[mask]).items()}
        if n == 0:  # a domain without lines: no interval to give
            for m in out:
                out[m][scope] = {k: 0.0 for k in METRIC_NAMES} | {"n": 0}
            continue
        ci = bootstrap_ci(values, seed)
        test = {}
        if reference is not None:
            ref = line_values(np.asarray(reference, np.float64)[mask])
            test = paired_test(values, {(m, k): ref[k] for m, k in values}, seed)
        for m in ranks_by_method:
            part = {k: _rounded(values[m, k].mean()) for k in METRIC_NAMES} | {"n": n}
            part["ci95"] = {k: [_rounded(x) for x in ci[m, k]] for k in METRIC_NAMES}
            if test:
                part["vs_dual_graph"] = {k: {"delta": _rounded(test[m, k]["delta"]), "p": _rounded(test[m, k]["p"]),
                                             "ci95": [_rounded(x) for x in test[m, k]["ci95"]]} for k in METRIC_NAMES}
            out[m][scope] = part
    for m in out:
        out[m]["n_test_lines"] = int(len(domains))
    return out


def summarize_with_stats(ranks: np.ndarray, domains: np.ndarray, domain_names, reference: np.ndarray | None = None,
                         seed: int = 0) -> dict:
    """{"overall": {...}, <domain>: {...}, "n_test_lines": n} of one method, each scope
    holding the metrics, n, "ci95" {metric: [lo, hi]} and, given the reference method's
    ranks on the same lines, "vs_dual_graph" {metric: {"delta", "p", "ci95"}}."""
    return _tables({"method": ranks}, domains, domain_names, reference, seed)["method"]


def compare(ranks_by_method: dict[str, np.ndarray], domains: np.ndarray, domain_names, seed: int = 0,
            reference: str = REFERENCE, line_set: str = "test") -> dict:
    """Every method's metrics with intervals, and its paired difference to `reference`, on
    the lines EVERY method was scored on (NaN ranks mark lines a method lacks)."""
    keep = common_lines(ranks_by_method)
    ranks = {m: np.asarray(r, np.float64)[keep] for m, r in ranks_by_method.items()}
    out = _tables(ranks, np.asarray(domains)[keep], domain_names, ranks.get(reference), seed)
    for m in out:
        out[m]["lines"] = {"set": line_set, "n": int(keep.sum()), "of": int(len(keep))}
    return out
