"""Slices of the test lines: the ONE definition of each line attribute the app cuts the
lines by, and of its bins, shared by the Slices page and the per-line filters (sidebar
and Evaluation page, `filter_lines`). No streamlit, no torch.

    table = slice_columns(run, run.line_table())   # + "<dimension> slice" columns, switch_share, target_count
    values(run, "history")                         # the dimension's values, in order
    for part in slice_metrics(run, "history"):     # one per value, in that order
        part.value, part.lines, part.table         # MetricTable of every method on those lines (None: no line scored)
    filter_lines(table, cold=True)                 # the rows of the cold_start slice "yes"

The dimensions (SLICES; the name is what `?slice=` holds, a value what `?value=` holds):
- cold_start: "yes" when the history holds at most reader.COLD_START_ITEMS items of the
  target domain (RunData.cold_start, the sidebar's rule), else "no".
- history: the history's length in fixed bins of a 1-2-5 series (1-5, 6-10, 11-20, 21-50,
  51-100, 101-200, >200). Log-spaced bins suit both scales: the Art-Office release's
  histories (8 to 59 items, median 12) fill the lower four, MovieLens's hundreds the upper
  ones, and a bin means the same length on every run (run-dependent quantiles would not).
- switches: the share of consecutive pairs of the history whose two items are of different
  domains (0 for a one-item history), in quarters: "0", "0-0.25", "0.25-0.5", "0.5-0.75",
  "0.75-1" (each bin holds its upper edge).
- popularity: how often the target item occurs in the training users' sequences (training
  users only: test users are never seen in training, so nothing leaks), in fixed
  log-spaced bins "0" (unseen in training), "1-9", "10-99", "100-999", ">999". On
  Art-Office that puts 4%, 50%, 42% and 4% of the test lines in the first four.
- domain: the target domain.
- ood: "yes" when one of the LLM's free-text or refined answers for the line named an item
  of the other domain (line_table's ood_case), "no" when it did not; "unknown" on lines
  without precomputed generations (or without a free/refined variant): only the lines
  the run generated for can be told.
Every value's lines partition the test lines: each line has exactly one value per dimension.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from urllm.app.reader import COLD_START_ITEMS, MetricTable, RunData

HISTORY_EDGES, HISTORY_BINS = (5, 10, 20, 50, 100, 200), ("1-5", "6-10", "11-20", "21-50", "51-100", "101-200", ">200")
SWITCH_EDGES, SWITCH_BINS = (0.0, 0.25, 0.5, 0.75), ("0", "0-0.25", "0.25-0.5", "0.5-0.75", "0.75-1")
POPULARITY_EDGES, POPULARITY_BINS = (0, 9, 99, 999), ("0", "1-9", "10-99", "100-999", ">999")
SMALL = 30  # lines: below this a slice's intervals are wide and the page says so


@dataclass(frozen=True)
class Slice:
    label: str  # what the page calls the dimension
    help: str  # how a line gets its value
    values: tuple[str, ...] | None  # in order; None: the run's (the target domains)


SLICES = {
    "cold_start": Slice("Cold-start", f"yes: at most {COLD_START_ITEMS} items of the target domain in the history",
                        ("yes", "no")),
    "history": Slice("History length", "items in the history, in bins of a 1-2-5 series", HISTORY_BINS),
    "switches": Slice("Cross-domain switches", "share of consecutive pairs of the history that change domain "
                      "(0 for a one-item history); a bin holds its upper edge", SWITCH_BINS),
    "popularity": Slice("Target popularity", "occurrences of the target item in the training users' sequences "
                        "(0: never seen in training)", POPULARITY_BINS),
    "domain": Slice("Target domain", "the domain of the held-out target", None),
    "ood": Slice("LLM out of domain", "yes: a free-text or refined LLM answer named an item of the other domain; "
                 "unknown: the run has no precomputed generations for the line", ("yes", "no", "unknown")),
}


def column(dimension: str) -> str:
    """The slice_columns column that holds a dimension's value."""
    return f"{dimension} slice"


def values(run: RunData, dimension: str) -> list[str]:
    """A dimension's values in order (the target domains: the run's)."""
    fixed = SLICES[dimension].values
    return list(run.domains if fixed is None else fixed)


def binned(x, edges, names) -> np.ndarray:
    """The bin name of each number: bin i holds (edges[i-1], edges[i]], the last everything above."""
    return np.asarray(names, object)[np.searchsorted(np.asarray(edges), np.asarray(x, np.float64), side="left")]


def switch_share(domains) -> float:
    """Share of consecutive pairs of a history (its items' domains) that change domain."""
    d = np.asarray(domains)
    return float((d[1:] != d[:-1]).mean()) if len(d) > 1 else 0.0


def target_counts(run: RunData) -> np.ndarray:
    """item -> occurrences in the training users' sequences (RunData.item_popularity)."""
    return run.item_popularity


def _ood(table: pd.DataFrame) -> np.ndarray:
    answers = [c for c in ("free_ood", "refined_ood") if c in table.columns]
    if not answers:
        return np.full(len(table), "unknown", object)
    known = table["evaluated"].astype(bool).to_numpy() & table[answers].notna().any(axis=1).to_numpy()
    return np.where(~known, "unknown", np.where(table["ood_case"].astype(bool), "yes", "no"))


def slice_values(table: pd.DataFrame, dimension: str, run: RunData | None = None) -> np.ndarray:
    """The dimension's value of each row of a line_table(); switches and popularity need the run."""
    if column(dimension) in table.columns:
        return table[column(dimension)].to_numpy()
    if dimension == "cold_start":
        return np.where(table["cold_start"].astype(bool), "yes", "no")
    if dimension == "history":
        return binned(table["history"], HISTORY_EDGES, HISTORY_BINS)
    if dimension == "domain":
        return table["domain"].to_numpy(object)
    if dimension == "ood":
        return _ood(table)
    if run is None:
        raise ValueError(f"the {dimension!r} slice needs the run")
    lines = [run.test_lines[i] for i in table["line"]]
    if dimension == "switches":
        return binned([switch_share(run.item_domain[list(ln.history)]) for ln in lines], SWITCH_EDGES, SWITCH_BINS)
    if dimension == "popularity":
        return binned(target_counts(run)[[ln.target for ln in lines]], POPULARITY_EDGES, POPULARITY_BINS)
    raise KeyError(f"no slice {dimension!r}: one of {', '.join(SLICES)}")


def slice_columns(run: RunData, table: pd.DataFrame) -> pd.DataFrame:
    """A copy of a line_table() with the raw numbers the bins come from (switch_share,
    target_count) and one "<dimension> slice" column per dimension of SLICES."""
    out = table.copy()
    lines = [run.test_lines[i] for i in out["line"]]
    out["switch_share"] = [round(switch_share(run.item_domain[list(ln.history)]), 4) for ln in lines]
    out["target_count"] = target_counts(run)[[ln.target for ln in lines]].astype(np.int64)
    for dimension in SLICES:
        out[column(dimension)] = slice_values(out, dimension, run)
    return out


def slice_rows(table: pd.DataFrame, dimension: str, value: str) -> pd.DataFrame:
    """The rows of a slice_columns() table whose dimension has `value`."""
    return table[table[column(dimension)] == value]


@dataclass(frozen=True)
class SliceMetrics:
    value: str
    lines: tuple[int, ...]  # test-line indices of the value
    table: MetricTable | None  # every method on those lines (None: empty, or no line scored by every method)

    @property
    def n(self) -> int:
        return len(self.lines)


def slice_metrics(run: RunData, dimension: str, table: pd.DataFrame | None = None, tables=None) -> list[SliceMetrics]:
    """Per value of the dimension, in order: its lines and run.metric_tables(lines) (every
    method rescored on them, 95% intervals, Δ and p vs dual_graph). `table`: a
    slice_columns() table (made here when None); `tables`: a cached stand-in for
    run.metric_tables (the app's ui.metric_tables)."""
    table = slice_columns(run, run.line_table()) if table is None else table
    score = tables or (lambda r, lines: r.metric_tables(lines))
    out = []
    for value in values(run, dimension):
        lines = tuple(int(i) for i in slice_rows(table, dimension, value)["line"])
        found = score(run, lines) if lines else []
        out.append(SliceMetrics(value, lines, found[0] if found else None))
    return out


def filter_lines(table: pd.DataFrame, cold: bool = False, hit: str = "all", ood: bool = False,
                 evaluated: bool = False, domains: list[str] | None = None) -> pd.DataFrame:
    """The rows of a line_table() that pass the app's filters (sidebar and Evaluation page),
    by the slices' definitions: cold-start only (cold_start "yes"), dual-graph top-10
    "hit"/"miss"/"all", out-of-domain cases only (ood "yes"), evaluated lines only, target
    domains (domain slice)."""
    keep = np.ones(len(table), bool)
    if domains is not None:
        keep &= np.isin(slice_values(table, "domain"), list(domains))
    if cold:
        keep &= slice_values(table, "cold_start") == "yes"
    if hit != "all":
        keep &= (table["dual_graph_hit@10"] == (hit == "hit")).to_numpy()
    if ood:
        keep &= slice_values(table, "ood") == "yes"
    if evaluated:
        keep &= table["evaluated"].astype(bool).to_numpy()
    return table[keep]
