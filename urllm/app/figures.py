"""Plotly figures of a run, shared by the app's pages and the case-study export: pure
functions of a RunData (and a test Line), no streamlit.

    sequence_graph(run, line)                   # the user's interleaved cross-domain history
    item_neighbourhood_graph(run, item)         # most frequent next items of one item

Plotly renders a subset of HTML in titles, legends, ticks and hover texts: every title,
user id and domain name from the run goes through escape_plotly (shown as text).
"""
from __future__ import annotations

import math

import plotly.graph_objects as go

from urllm.app.reader import Line, RunData
from urllm.app.safe_text import escape_plotly as esc

DOMAIN_COLOURS = ("#1f77b4", "#ff7f0e")  # domain 0, domain 1
TARGET_SIZE = 22
CROSS_EDGE = dict(color="#d62728", width=1.5, dash="dash")  # a switch of domain
SAME_EDGE = dict(color="#9e9e9e", width=1.5)


def _short(title: str, n: int = 28) -> str:
    return esc(title, n)


def _outward(x: float, y: float) -> str:
    """Text position pointing away from the centre of a radial layout."""
    if abs(x) < 0.3:
        return "top center" if y > 0 else "bottom center"
    return "middle right" if x > 0 else "middle left"


def _lines_trace(points: list[tuple[float, float, float, float]], name: str, line: dict) -> go.Scatter:
    """One trace of many line segments (x0, y0, x1, y1), separated by None."""
    xs, ys = [], []
    for x0, y0, x1, y1 in points:
        xs += [x0, x1, None]
        ys += [y0, y1, None]
    return go.Scatter(x=xs, y=ys, mode="lines", line=line, name=name, hoverinfo="skip")


def sequence_graph(run: RunData, line: Line, max_items: int = 60, labels: bool = False,
                   neighbours: list[tuple[int, float, list[int]]] | None = None) -> go.Figure:
    """The line's history (oldest first) as a time-ordered graph: one node per event on the
    lane of its domain, edges between consecutive events (dashed red when the domain
    changes), and the held-out target as a star at the end. `labels`: short titles on the
    nodes (hover always shows the full title). `neighbours`: (user index, score, recent
    items) of retrieved users, each drawn on a lane of its own below, its items ending
    where the user's history ends; an item the user also has is ringed in black, the
    held-out target ringed in gold (the neighbour "knew" the answer)."""
    history = list(line.history)
    first = max(0, len(history) - max_items)  # show the most recent events only
    shown = history[first:]
    positions = list(range(first + 1, len(history) + 1))  # 1-based positions in the full history
    domain_of = [int(run.item_domain[i]) for i in shown]
    target_x, target_domain = len(history) + 1, int(run.item_domain[line.target])

    fig = go.Figure()
    nodes = list(zip(positions, domain_of)) + [(target_x, target_domain)]
    same, cross = [], []
    for (x0, d0), (x1, d1) in zip(nodes, nodes[1:]):
        (cross if d0 != d1 else same).append((x0, d0, x1, d1))
    fig.add_trace(_lines_trace(same, "same-domain step", SAME_EDGE))
    fig.add_trace(_lines_trace(cross, "cross-domain step", CROSS_EDGE))

    for d, name in enumerate(run.domains):
        idx = [j for j, dj in enumerate(domain_of) if dj == d]
        fig.add_trace(go.Scatter(
            x=[positions[j] for j in idx], y=[d] * len(idx), mode="markers+text" if labels else "markers", name=esc(name),
            marker=dict(color=DOMAIN_COLOURS[d], size=12, line=dict(color="white", width=1)),
            # alternate above and below so that neighbouring labels do not overwrite each other
            text=[_short(run.titles[shown[j]], 18) for j in idx] if labels else None,
            textposition=[("top center" if (positions[j] + d) % 2 else "bottom center") for j in idx],
            textfont=dict(size=10),
            hovertext=[f"{esc(run.titles[shown[j]])}<br>domain: {esc(name)}<br>position {positions[j]} of {len(history)}"
                       for j in idx],
            hoverinfo="text"))
    fig.add_trace(go.Scatter(
        x=[target_x], y=[target_domain], mode="markers+text", name="held-out target",
        marker=dict(symbol="star", size=TARGET_SIZE, color=DOMAIN_COLOURS[target_domain], line=dict(color="black", width=1.5)),
        text=["held-out target"], textposition="top center",
        hovertext=[f"held-out target: {esc(run.titles[line.target])}<br>domain: {esc(run.domains[target_domain])}"
                   f"<br>position {target_x}"],
        hoverinfo="text"))

    title = (f"User {esc(run.user_ids[line.user], 60)}: {len(history)} events, then the held-out "
             f"{esc(run.domains[line.domain])} target")
    if first:
        title += f" (the most recent {len(shown)} of {len(history)} shown)"
    lanes = _neighbour_lanes(fig, run, line, neighbours or [], end=len(history), first=first + 1)
    fig.update_layout(
        title=title, height=340 + 60 * len(lanes), margin=dict(l=10, r=10, t=80, b=40),
        legend=dict(orientation="h", x=0, y=1.02, yanchor="bottom"),
        xaxis=dict(title="position in the history (oldest first)", zeroline=False),
        yaxis=dict(tickvals=[0, 1] + [y for y, _ in lanes], ticktext=[esc(d) for d in run.domains] + [t for _, t in lanes],
                   range=[-0.6 - len(lanes), 1.6], zeroline=False, showgrid=False))
    return fig


def _neighbour_lanes(fig: go.Figure, run: RunData, line: Line, neighbours, end: int, first: int) -> list[tuple[float, str]]:
    """Draw each neighbour's recent items on a lane below the user's (its last item under
    the user's last event); returns (y, tick label) per lane."""
    mine, lanes = set(line.history), []
    for j, (user, score, items) in enumerate(neighbours):
        y = -1.0 - j
        items = list(items)[-(end - first + 1):] if end >= first else []
        xs = list(range(end - len(items) + 1, end + 1))
        ring = ["gold" if i == line.target else "black" if i in mine else "white" for i in items]
        fig.add_trace(go.Scatter(
            x=xs, y=[y] * len(items), mode="markers", showlegend=j == 0, name="neighbours' recent items",
            marker=dict(symbol="diamond", size=10, opacity=0.75, color=[DOMAIN_COLOURS[int(run.item_domain[i])] for i in items],
                        line=dict(color=ring, width=2)),
            hovertext=[f"neighbour {esc(run.user_ids[user], 40)} (score {score:.3f})<br>{esc(run.titles[i])}<br>domain: "
                       f"{esc(run.domains[int(run.item_domain[i])])}"
                       + ("<br><b>the held-out target</b>" if i == line.target else "<br>also in this history" if i in mine else "")
                       for i in items],
            hoverinfo="text"))
        lanes.append((y, f"nb {j + 1}: {esc(run.user_ids[user], 14)}"))
    return lanes


def item_neighbourhood_graph(run: RunData, item: int, n: int = 10) -> go.Figure:
    """`item` in the centre, its n most frequent next items (training sequences) around it;
    edge width grows with the transition count."""
    neighbours = run.item_neighbourhood(item, n)
    most = max((c for _, c in neighbours), default=1)
    fig = go.Figure()
    spots = []
    for j, (nxt, count) in enumerate(neighbours):
        angle = math.pi / 2 - 2 * math.pi * j / len(neighbours)  # clockwise from the top, most frequent first
        x, y = math.cos(angle), math.sin(angle)
        spots.append((nxt, count, x, y))
        fig.add_trace(go.Scatter(x=[0, x], y=[0, y], mode="lines", hoverinfo="skip", showlegend=False,
                                 line=dict(color="#9e9e9e", width=1 + 7 * count / most)))

    for d, name in enumerate(run.domains):
        mine = [s for s in spots if int(run.item_domain[s[0]]) == d]
        fig.add_trace(go.Scatter(
            x=[s[2] for s in mine], y=[s[3] for s in mine], mode="markers+text", name=esc(name),
            marker=dict(color=DOMAIN_COLOURS[d], size=14),
            text=[_short(run.titles[s[0]]) for s in mine], textposition=[_outward(s[2], s[3]) for s in mine],
            hovertext=[f"{esc(run.titles[s[0]])}<br>domain: {esc(name)}<br>next after the centre {s[1]}×" for s in mine],
            hoverinfo="text"))
    centre_domain = int(run.item_domain[item])
    fig.add_trace(go.Scatter(
        x=[0], y=[0], mode="markers", name="picked item",
        marker=dict(color=DOMAIN_COLOURS[centre_domain], size=24, line=dict(color="black", width=2)),
        hovertext=[f"{esc(run.titles[item])}<br>domain: {esc(run.domains[centre_domain])}"], hoverinfo="text"))

    title = (f"{len(neighbours)} most frequent next items of “{_short(run.titles[item], 50)}”" if neighbours
             else f"“{_short(run.titles[item], 50)}” is never followed by an item in the training sequences")
    fig.update_layout(title=title, height=480, margin=dict(l=10, r=10, t=80, b=10),
                      xaxis=dict(visible=False, range=[-2.6, 2.6]), yaxis=dict(visible=False, range=[-1.25, 1.25], scaleanchor="x"),
                      legend=dict(orientation="h", x=0, y=1.02, yanchor="bottom"))
    return fig


def interval_bars(rows: list[dict], x: str, group: str, value: str, x_order: list[str], group_order: list[str],
                  colours: dict[str, str] | None = None, height: int = 400) -> go.Figure:
    """Grouped bars of `value` per `x`, one colour per `group`, each bar with the error bar of
    its row's 95% interval ("lo", "hi"; None: no bar) and "n" in the hover. Rows hold
    escaped labels. One go.Bar per group: plotly express builds the same figure several
    times slower, which a page switch pays on every rerun."""
    fig = go.Figure()
    for name in group_order:
        mine = {r[x]: r for r in rows if r[group] == name}
        xs = [v for v in x_order if v in mine]
        if not xs:
            continue
        ys = [mine[v][value] for v in xs]
        fig.add_trace(go.Bar(
            x=xs, y=ys, name=name, marker_color=(colours or {}).get(name), customdata=[mine[v].get("n") for v in xs],
            hovertemplate=f"{name}<br>%{{x}}: %{{y:.4f}}<br>n %{{customdata}}<extra></extra>",
            error_y=dict(type="data", symmetric=False,
                         array=[None if mine[v].get("hi") is None or y is None else mine[v]["hi"] - y for v, y in zip(xs, ys)],
                         arrayminus=[None if mine[v].get("lo") is None or y is None else y - mine[v]["lo"] for v, y in zip(xs, ys)])))
    fig.update_layout(barmode="group", height=height, margin=dict(l=10, r=10, t=30, b=10), yaxis_title=value,
                      xaxis=dict(categoryorder="array", categoryarray=x_order), legend_title_text=group)
    return fig
