"""A run in one screen (the Home page): the headline metric of every method against the
dual-graph model, and a few test lines worth opening in a demo or a case study. Pure
functions of a metric table and of RunData.line_table(); no streamlit.

    rows = headline(table.metrics, "MRR")   # a row per method: value, interval, Δ vs dual_graph, p, verdict
    picks = notable_lines(line_table)       # where the LLM helped most / hurt most / left the domain, a cold-start user
"""
from __future__ import annotations

from urllm.app.case_study import ordered_methods
from urllm.schema import LLM_METHODS
from urllm.stats import REFERENCE

ALPHA = 0.05  # a difference to the reference is called significant below this p


def headline(metrics: dict, metric: str, scope: str = "overall") -> list[dict]:
    """One row per method: its metric on `scope` with the 95% interval, the paired
    difference to dual_graph with p, and a verdict ("above", "below", "tie" at ALPHA;
    "reference" for dual_graph itself; None without a test)."""
    rows = []
    for method in ordered_methods(metrics):
        values = (metrics[method] or {}).get(scope) or {}
        if metric not in values:
            continue
        test = (values.get("vs_dual_graph") or {}).get(metric) or {}
        verdict = "reference" if method == REFERENCE else None
        if test and method != REFERENCE:
            verdict = "tie" if test["p"] >= ALPHA else "above" if test["delta"] > 0 else "below"
        rows.append({"method": method, "value": values[metric], "ci95": (values.get("ci95") or {}).get(metric),
                     "delta": test.get("delta") if method != REFERENCE else None,
                     "p": test.get("p") if method != REFERENCE else None, "verdict": verdict, "n": values.get("n")})
    return rows


def _rank_columns(table, methods) -> list[str]:
    return [f"{m}_rank" for m in methods if f"{m}_rank" in table.columns]


def _pick(kind: str, why: str, row, page: str, method: str | None = None) -> dict:
    return {"kind": kind, "why": why, "line": int(row["line"]), "user": row["user"], "domain": row["domain"],
            "target": row["target"], "page": page, "method": method}


def notable_lines(table) -> list[dict]:
    """Up to four test lines worth showing, each with why: the largest rank gain of an LLM
    method over the dual-graph model, its largest loss, the line whose free-text answers
    named the most items of the other domain, and the cold-start line the best method
    ranked highest. Ties go to the lowest line index, so the picks are stable."""
    picks: list[dict] = []
    if table is None or len(table) == 0 or "dual_graph_rank" not in table.columns:
        return picks
    llm = _rank_columns(table, LLM_METHODS)
    base = table["dual_graph_rank"].astype(float)
    if llm:
        gains = table[llm].astype(float).rsub(base, axis=0)  # dual-graph rank minus each LLM method's: > 0 is a gain
        flat = gains.stack()
        for kind, best in (("LLM helped most", flat.max()), ("LLM hurt most", flat.min())):
            if not len(flat) or best == 0 or (kind == "LLM helped most") != (best > 0):
                continue
            (i, col) = flat[flat == best].index[0]
            row, method = table.loc[i], col.removesuffix("_rank")
            picks.append(_pick(kind, f"{method} ranks the target {int(row[col])}, the dual-graph model "
                               f"{int(base[i])}", row, "Generation", method))
    ood = [c for c in ("free_ood", "refined_ood") if c in table.columns]
    if ood:
        count = table[ood].fillna(0).sum(axis=1)
        if count.max() > 0:
            i = count.idxmax()
            picks.append(_pick("LLM left the domain", f"{int(count[i])} free-text / refined answers named an item of "
                               "the other domain", table.loc[i], "Generation"))
    cold = table[table["cold_start"].astype(bool)]
    ranks = _rank_columns(table, [c.removesuffix("_rank") for c in table.columns if c.endswith("_rank")])
    if len(cold) and ranks:
        best = cold[ranks].astype(float).min(axis=1).fillna(float("inf"))
        i = best.idxmin()
        what = "no method ranked its target" if best[i] == float("inf") else f"best rank of any method {int(best[i])}"
        picks.append(_pick("Cold-start user", f"few target-domain items in the history; {what}", cold.loc[i],
                           "Sequence_graph"))
    return picks
