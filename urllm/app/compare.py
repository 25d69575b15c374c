"""Two runs on the same dataset, line by line (the Compare page): which test lines both
runs hold, every shared method's metrics in each run with 95% intervals, the paired
difference (b - a) on the lines both runs scored with its interval and sign-flip p, and
each line's rank change. No streamlit here.

    pair = pair_runs(run_a, run_b)       # CompareError (a clear message) when not comparable
    rows = method_deltas(pair, "MRR")    # a row per method both runs scored
    table = line_changes(pair, "urllm")  # a row per common line: rank in a, in b, improved / hurt / unchanged

Lines are matched by what they are, not by their row: (user id, target domain, held-out
item, history length), so two runs of one dataset whose test splits list the lines in
another order (or hold different subsets, e.g. `max_users`) still pair up on the lines
they share. Two runs on different item catalogues are refused: their ranks are over
different candidate sets and cannot be set side by side.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from urllm.app.case_study import ordered_methods
from urllm.app.reader import RunData
from urllm.stats import METRIC_NAMES, bootstrap_ci, line_values, paired_test

CHANGES = ("improved", "hurt", "unchanged")  # of a line's rank from run a to run b


class CompareError(Exception):
    """Two runs that cannot be compared line by line; the message says why."""


@dataclass(frozen=True)
class RunPair:
    a: RunData
    b: RunData
    rows_a: np.ndarray  # test-line indexes in a of the lines both runs hold
    rows_b: np.ndarray  # the same lines' indexes in b, in the same order

    @property
    def n(self) -> int:
        return len(self.rows_a)

    @property
    def methods(self) -> list[str]:
        """Methods with per-line ranks in both runs, in the paper's table order."""
        ra, rb = self.a.line_ranks or {}, self.b.line_ranks or {}
        return ordered_methods({m: None for m in ra if m in rb})

    def ranks(self, method: str) -> tuple[np.ndarray, np.ndarray]:
        """The method's full ranks on the common lines in a and in b (NaN: not scored there)."""
        return self.a.line_ranks[method][self.rows_a], self.b.line_ranks[method][self.rows_b]


def line_keys(run: RunData) -> list[tuple]:
    """What a test line is, independent of its row: (user id, domain, target title, history length)."""
    return [(run.user_ids[ln.user], run.domains[ln.domain], run.titles[ln.target], len(ln.history)) for ln in run.test_lines]


def pair_runs(a: RunData, b: RunData) -> RunPair:
    """The two runs' common test lines; CompareError when the runs are one run, are on
    different datasets, predate per-line ranks or share no line."""
    if a.dir.resolve() == b.dir.resolve():
        raise CompareError(f"Both sides are run {a.name!r}: pick a second run.")
    spec_a, spec_b = (r.manifest["dataset"].get("spec", "?") for r in (a, b))
    if list(a.domains) != list(b.domains) or a.titles != b.titles or not np.array_equal(a.item_domain, b.item_domain):
        raise CompareError(f"Run {a.name!r} is on dataset {spec_a!r} and run {b.name!r} on {spec_b!r}: their item "
                           f"catalogues differ ({len(a.titles):,} and {len(b.titles):,} items), so their ranks are over "
                           "different candidates. Compare two runs of the same dataset.")
    for run in (a, b):
        if run.line_ranks is None:
            raise CompareError(f"Run {run.name!r} predates per-line ranks (no line_ranks.json): rerun its train.py "
                               "command to add them, then compare.")
    where = {key: i for i, key in enumerate(line_keys(b))}
    pairs = [(i, where[key]) for i, key in enumerate(line_keys(a)) if key in where]
    if not pairs:
        raise CompareError(f"Runs {a.name!r} and {b.name!r} share no test line (same catalogue, other splits).")
    rows_a, rows_b = (np.array(side, np.int64) for side in zip(*pairs))
    return RunPair(a, b, rows_a, rows_b)


def method_deltas(pair: RunPair, metric: str, seed: int = 0) -> list[dict]:
    """Per method both runs scored: its `metric` in a and in b with 95% bootstrap intervals
    and the paired difference b - a (its interval and sign-flip p) on the lines BOTH runs
    scored it on (n). Methods on the same lines share one bootstrap and one test (the same
    resamples, one matrix product), as urllm.stats.compare does."""
    if metric not in METRIC_NAMES:
        raise ValueError(f"unknown metric {metric!r}: expected one of {', '.join(METRIC_NAMES)}")
    groups: dict[bytes, list[str]] = {}
    masks = {}
    for method in pair.methods:
        ra, rb = pair.ranks(method)
        masks[method] = ~np.isnan(ra) & ~np.isnan(rb)
        groups.setdefault(masks[method].tobytes(), []).append(method)
    rows = {}
    for methods in groups.values():
        both = masks[methods[0]]
        if not both.any():
            rows |= {m: {"method": m, "n": 0} for m in methods}
            continue
        va = {m: line_values(pair.ranks(m)[0][both])[metric] for m in methods}
        vb = {m: line_values(pair.ranks(m)[1][both])[metric] for m in methods}
        ci = bootstrap_ci({(m, side): v[m] for m in methods for side, v in (("a", va), ("b", vb))}, seed)
        test = paired_test(vb, va, seed)
        for m in methods:
            ra, rb = (r[both] for r in pair.ranks(m))
            rows[m] = {"method": m, "n": int(both.sum()), "a": float(va[m].mean()), "a_ci95": list(ci[m, "a"]),
                       "b": float(vb[m].mean()), "b_ci95": list(ci[m, "b"]), "delta": test[m]["delta"],
                       "delta_ci95": test[m]["ci95"], "p": test[m]["p"],
                       **{c: n for c, n in zip(CHANGES, _counts(ra, rb))}}
    return [rows[m] for m in pair.methods]


def _counts(ra: np.ndarray, rb: np.ndarray) -> tuple[int, int, int]:
    return int((rb < ra).sum()), int((rb > ra).sum()), int((rb == ra).sum())


def change_of(rank_a: float, rank_b: float) -> str | None:
    """'improved' when the target moved up in b (a smaller rank), 'hurt' when down, None
    when either run did not score the line."""
    if np.isnan(rank_a) or np.isnan(rank_b):
        return None
    return CHANGES[0] if rank_b < rank_a else CHANGES[1] if rank_b > rank_a else CHANGES[2]


def line_changes(pair: RunPair, method: str):
    """One row per common test line: who and what, the method's rank in a and in b, the
    change (b's rank minus a's: negative is better) and its kind; lines a run did not score
    the method on have no change."""
    import pandas as pd

    ra, rb = pair.ranks(method)
    a = pair.a
    rows = []
    for i, j, x, y in zip(pair.rows_a, pair.rows_b, ra, rb):
        ln = a.test_lines[int(i)]
        rows.append({"line_a": int(i), "line_b": int(j), "user": a.user_ids[ln.user], "domain": a.domains[ln.domain],
                     "target": a.titles[ln.target], "history": len(ln.history), "cold_start": a.cold_start(ln),
                     "rank_a": None if np.isnan(x) else int(x), "rank_b": None if np.isnan(y) else int(y),
                     "rank_change": None if np.isnan(x) or np.isnan(y) else int(y - x), "change": change_of(x, y)})
    return pd.DataFrame(rows)


def comparison_export(pair: RunPair, method: str, seed: int = 0) -> dict:
    """The comparison as JSON-ready data: both runs, the common lines, every metric's
    paired differences per method, and the per-line changes of `method`."""
    table = line_changes(pair, method)
    return {"runs": {"a": pair.a.name, "b": pair.b.name}, "dataset": pair.a.manifest["dataset"].get("spec"),
            "config_differences": config_diff(pair), "common_lines": pair.n,
            "lines_a": len(pair.a.test_lines), "lines_b": len(pair.b.test_lines),
            "difference": "b - a on the lines both runs scored; p: two-sided sign-flip test",
            "metrics": {metric: method_deltas(pair, metric, seed) for metric in METRIC_NAMES},
            "lines_method": method,
            "lines": table.astype(object).where(table.notna(), None).to_dict("records")}


def _flat(tree, prefix: str = "") -> dict:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out = {}
    for key, value in tree.items():
        out |= _flat(value, f"{prefix}.{key}" if prefix else str(key))
    return out


def config_diff(pair: RunPair) -> list[dict]:
    """The resolved config values (manifest `config`, dotted names as train.py's --set
    takes them) that differ between the two runs: what the comparison is a comparison of."""
    fa, fb = _flat(pair.a.config), _flat(pair.b.config)
    return [{"setting": k, "a": fa.get(k), "b": fb.get(k)} for k in sorted(fa.keys() | fb.keys()) if fa.get(k) != fb.get(k)]
