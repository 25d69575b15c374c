"""The Embeddings page's pieces: one projected space (RunData.projection) as a WebGL scatter
with the selected line's points marked, its points' keys and labels, search and the
precomputed nearest-neighbours table. Pure functions of a RunData, no streamlit.

    pts = run.projection("minilm_items")
    marks = space_marks(run, "items", pts, line, neighbour_users)
    fig = space_figure(run, space, pts, "popularity", marks, search_matches(run, "items", pts, "star"))
    neighbour_rows(run, "items", pts, position)     # rows for a table: rank, cosine, title, ...

Points are named by keys that stay the same across spaces of a kind ("i12": item 12,
"l3": test line 3, "u7": training user 7, "u7.A": user 7 in domain A's index), so a
picked item stays picked when the space changes. Every title, user id and domain name
from the run goes through escape_plotly.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from urllm.app.figures import DOMAIN_COLOURS
from urllm.app.reader import Line, RunData
from urllm.app.safe_text import cut
from urllm.app.safe_text import escape_plotly as esc

NONE_COLOUR = "#9e9e9e"  # a training user of the mixed space (no target domain)
HIT_COLOURS = {"dual-graph top-10 hit": "#2ca02c", "dual-graph top-10 miss": "#d62728", "training user": NONE_COLOUR}
COLOURINGS = {"items": ("domain", "popularity"), "users": ("domain", "hit/miss")}
# mark -> marker style, drawn over the points in this order
MARK_STYLE = {
    "search match": dict(symbol="square-open", size=13, color="#e377c2", line=dict(width=2)),
    "history item": dict(symbol="circle-open", size=12, color="black", line=dict(width=2)),
    "neighbours' recent item": dict(symbol="diamond-open", size=12, color="#9467bd", line=dict(width=2)),
    "retrieved neighbour": dict(symbol="diamond", size=13, color="#9467bd", line=dict(color="black", width=1)),
    "held-out target": dict(symbol="star", size=20, color="gold", line=dict(color="black", width=1.5)),
    "selected line": dict(symbol="star", size=20, color="gold", line=dict(color="black", width=1.5)),
    "picked point": dict(symbol="x", size=14, color="black", line=dict(width=1)),
}


def point_keys(run: RunData, kind: str, pts: dict) -> list[str]:
    """A key per point (module docstring)."""
    if kind == "items":
        return [f"i{r}" for r in pts["rows"].tolist()]
    return [f"l{ln}" if ln >= 0 else f"u{u}" + (f".{run.domains[d]}" if d >= 0 else "")
            for u, ln, d in zip(pts["rows"].tolist(), pts["line"].tolist(), pts["domain"].tolist())]


def point_label(run: RunData, kind: str, pts: dict, j: int, limit: int = 80) -> str:
    """Plain text naming point j (for a select box or a table; not escaped)."""
    r, d = int(pts["rows"][j]), int(pts["domain"][j])
    if kind == "items":
        return cut(f"[{run.domains[d]}] {run.titles[r]}", limit)
    line = int(pts["line"][j])
    if line >= 0:
        return cut(f"user {run.user_ids[r]} → {run.domains[d]} (test line {line})", limit)
    return cut(f"training user {run.user_ids[r]}" + (f" ({run.domains[d]} index)" if d >= 0 else ""), limit)


def _hover(run: RunData, kind: str, pts: dict) -> list[str]:
    if kind == "items":
        pop = run.item_popularity
        return [f"{esc(run.titles[r])}<br>domain: {esc(run.domains[d])}<br>training interactions: {pop[r]}"
                for r, d in zip(pts["rows"].tolist(), pts["domain"].tolist())]
    lines, out = run.test_lines, []
    for r, ln, d in zip(pts["rows"].tolist(), pts["line"].tolist(), pts["domain"].tolist()):
        if ln >= 0:
            out.append(f"user {esc(run.user_ids[r])} → {esc(run.domains[d])}<br>target: {esc(run.titles[lines[ln].target])}"
                       f"<br>test line {ln}")
        else:
            where = f"in the {esc(run.domains[d])} index" if d >= 0 else "mixed vector"
            out.append(f"training user {esc(run.user_ids[r])}<br>{where}")
    return out


def space_marks(run: RunData, kind: str, pts: dict, line: Line, neighbour_users: list[int], recent: int = 5) -> dict:
    """mark -> positions of the points that carry it: items spaces the line's history, its
    held-out target and the neighbours' `recent` last items; users spaces the line itself
    and the retrieved training users (in the line's target-domain index, or mixed)."""
    rows = pts["rows"]
    if kind == "items":
        recent_items = {int(i) for u in neighbour_users for i in run.user_items(u)[-recent:]} if recent > 0 else set()
        return {"history item": np.flatnonzero(np.isin(rows, list(line.history))),
                "neighbours' recent item": np.flatnonzero(np.isin(rows, sorted(recent_items))),
                "held-out target": np.flatnonzero(rows == line.target)}
    training = (pts["line"] < 0) & ((pts["domain"] == line.domain) | (pts["domain"] < 0))
    return {"retrieved neighbour": np.flatnonzero(training & np.isin(rows, list(neighbour_users))),
            "selected line": np.flatnonzero(pts["line"] == line.index)}


def search_matches(run: RunData, kind: str, pts: dict, query: str) -> np.ndarray:
    """Positions whose title (items) or user id (users) contains `query`, case-insensitive."""
    q = query.strip().casefold()
    if not q:
        return np.zeros(0, np.int64)
    names = run.titles if kind == "items" else run.user_ids
    return np.array([j for j, r in enumerate(pts["rows"].tolist()) if q in names[r].casefold()], np.int64)


def _groups(run: RunData, kind: str, pts: dict, colour: str, hits: np.ndarray | None):
    """(name, colour, positions) of the base traces."""
    dom = pts["domain"]
    if colour == "hit/miss" and kind == "users" and hits is not None:
        line = pts["line"]
        hit = np.zeros(len(line), bool)
        hit[line >= 0] = hits[line[line >= 0]]
        names = list(HIT_COLOURS)
        return [(names[0], HIT_COLOURS[names[0]], np.flatnonzero(hit)),
                (names[1], HIT_COLOURS[names[1]], np.flatnonzero((line >= 0) & ~hit)),
                (names[2], HIT_COLOURS[names[2]], np.flatnonzero(line < 0))]
    groups = [(esc(name), DOMAIN_COLOURS[d], np.flatnonzero(dom == d)) for d, name in enumerate(run.domains)]
    if (dom < 0).any():
        groups.append(("training user (no target domain)", NONE_COLOUR, np.flatnonzero(dom < 0)))
    return groups


def space_figure(run: RunData, space: dict, pts: dict, colour: str, marks: dict, matches=None, picked: int | None = None,
                 hits: np.ndarray | None = None) -> go.Figure:
    """The space's points coloured by `colour` ("domain", "popularity" for items, "hit/miss"
    for users: `hits`, one bool per test line), each mark of `marks` (space_marks) drawn on
    top with its positions as customdata, the search matches and the picked point too."""
    kind, xy = space["kind"], pts["xy"]
    hover = _hover(run, kind, pts)
    fig = go.Figure()
    if colour == "popularity" and kind == "items":
        counts = run.item_popularity[pts["rows"]]
        fig.add_trace(go.Scattergl(
            x=xy[:, 0], y=xy[:, 1], mode="markers", name="items", hovertext=hover, hoverinfo="text",
            marker=dict(size=5, opacity=0.7, color=np.log10(1 + counts), colorscale="Viridis", showscale=True,
                        colorbar=dict(title="log10(1 + training<br>interactions)", thickness=12))))
    else:
        for name, col, at in _groups(run, kind, pts, colour, hits):
            fig.add_trace(go.Scattergl(x=xy[at, 0], y=xy[at, 1], mode="markers", name=name,
                                       marker=dict(color=col, size=5, opacity=0.6),
                                       hovertext=[hover[j] for j in at], hoverinfo="text"))
    layers = dict(marks)
    if matches is not None and len(matches):
        layers = {"search match": matches} | layers
    if picked is not None:
        layers["picked point"] = np.array([picked])
    for name in MARK_STYLE:
        at = np.asarray(layers.get(name, []), np.int64)
        if not at.size:
            continue
        fig.add_trace(go.Scattergl(x=xy[at, 0], y=xy[at, 1], mode="markers", name=f"{name} ({at.size})",
                                   marker=MARK_STYLE[name], customdata=at.tolist(),
                                   hovertext=[f"{name}<br>{hover[j]}" for j in at], hoverinfo="text"))
    sample = "" if len(xy) == space.get("points", len(xy)) else f" (a sample of {space['points']:,})"
    fig.update_layout(title=f"{esc(space['label'])}: UMAP of {len(xy):,} points{sample}, coloured by {colour}",
                      height=600, margin=dict(l=10, r=10, t=80, b=10), uirevision=space["name"],
                      legend=dict(orientation="h", x=0, y=1.02, yanchor="bottom"),
                      xaxis=dict(showticklabels=False, title=""), yaxis=dict(showticklabels=False, title=""))
    return fig


def neighbour_rows(run: RunData, kind: str, pts: dict, j: int) -> list[dict]:
    """The precomputed nearest neighbours of point j, best first (empty for an older file)."""
    if "nbrs" not in pts:
        return []
    rows = []
    for rank, (n, sim) in enumerate(zip(pts["nbrs"][j].tolist(), pts["sims"][j].tolist()), 1):
        if n < 0:
            continue
        r, d = int(pts["rows"][n]), int(pts["domain"][n])
        row = {"rank": rank, "cosine": round(float(sim), 4), "domain": run.domains[d] if d >= 0 else "–"}
        if kind == "items":
            row |= {"title": run.titles[r], "training interactions": int(run.item_popularity[r])}
        else:
            line = int(pts["line"][n])
            row |= {"user": run.user_ids[r], "point": f"test line {line}" if line >= 0 else "training user"}
        rows.append(row)
    return rows
