"""Embeddings: the run's embedding spaces (dual-graph, MiniLM, LLM4CDSR and RSLLM items; users'
domain-specific and mixed vectors), each a UMAP layout made by train.py's projections stage,
with the selected line's history, held-out target and retrieved neighbours marked, a
search, and the precomputed nearest neighbours of a picked point. The space, colouring,
search and picked point live in the URL (`?space=minilm_items&colour=popularity&q=star&pick=i12`)."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from urllm.app.embedding_view import COLOURINGS, neighbour_rows, point_keys, point_label, search_matches, space_figure, space_marks
from urllm.app.reader import RunError
from urllm.app.safe_text import escape_markdown as md
from urllm.app.ui import error_text, guard, line_table, need, sidebar, url_choice

st.set_page_config(page_title="Embeddings · URLLM Studio", layout="wide")
sel = sidebar()
run, line = sel.run, sel.line
st.title("Embeddings")
need(run, "data", "users to highlight")
need(run, "projections", "UMAP projections")
spaces = {s["name"]: s for s in guard(lambda: run.projection_spaces)}
if any(s["legacy"] for s in spaces.values()):
    st.info("This run's projections predate the other spaces and the neighbour tables: it shows the dual-graph items "
            "and the test lines only. Rerunning the same train.py command adds them.")

left, right = st.columns([3, 2])
with left:
    name = url_choice("space", "Space", st.selectbox, list(spaces), format_func=lambda s: spaces[s]["label"])
space = spaces[name]
kind = space["kind"]
pts = guard(run.projection, name)
keys = point_keys(run, kind, pts)
if st.session_state.get("_emb_space", name) != name:  # the space changed here: choices left from the last one go quietly
    for key, valid in (("colour", COLOURINGS[kind]), ("pick", keys)):
        if st.query_params.get(key) not in valid:
            st.query_params.pop(key, None)
st.session_state["_emb_space"] = name
with right:
    colour = url_choice("colour", "Colour by", st.segmented_control, COLOURINGS[kind]) or COLOURINGS[kind][0]

# the search box, kept in the URL as ?q=
if "_emb_q" not in st.session_state:
    st.session_state["_emb_q"] = st.query_params.get("q", "")
query = st.text_input("Search " + ("titles" if kind == "items" else "user ids"), key="_emb_q", placeholder="part of a name")
if query:
    st.query_params["q"] = query
else:
    st.query_params.pop("q", None)
matches = search_matches(run, kind, pts, query)

# the line's retrieved neighbours (the run's main k), marked in every space
neighbours, k = [], run.main_k
if run.has("retrieval") and k > 0:
    try:
        neighbours = [u for u, _ in run.neighbours(line, k)]
    except RunError as err:
        st.warning(f"No retrieved neighbours to mark: {error_text(err)}")
recent = run.max_neighbor_items
marks = space_marks(run, kind, pts, line, neighbours, recent)

at_key = {key: j for j, key in enumerate(keys)}
mine = f"l{line.index}" if kind == "users" else f"i{line.target}"
default = mine if mine in at_key else keys[0] if keys else None
hits = None
if kind == "users" and colour == "hit/miss":
    hits = line_table(run)["dual_graph_hit@10"].to_numpy(bool)
chart = st.empty()  # above the notes and the pick box; drawn once the pick (marked on it) is known

who = f"user {md(sel.user)} → {md(sel.domain)}"
if kind == "items":
    history, n_recent = set(line.history), len(marks["neighbours' recent item"])
    st.caption(f"Marked for {who}: {len(marks['history item'])} of {len(history)} distinct history items and "
               f"{'the' if len(marks['held-out target']) else 'not the'} held-out target (star) are among the "
               f"{len(pts['rows']):,} projected items, and {n_recent} projected items are among the last {recent} items "
               f"of its {len(neighbours)} retrieved neighbours (k = {k}; diamonds).")
else:
    training = ("" if space["legacy"] else "; each training user retrieval can return appears "
                + ("once per target-domain index" if name == "users_domain" else "once"))
    st.caption(f"Each test line is placed by its vector for its target domain{training}. Marked: {who} "
               f"({'star' if len(marks['selected line']) else 'not in the sample'}) and "
               f"{len(marks['retrieved neighbour'])} of its {len(neighbours)} retrieved neighbours (k = {k}).")

if query:
    what = "titles" if kind == "items" else "user ids"
    st.markdown(f"**{len(matches)}** projected points whose {what} contain {md(query)} (outlined squares)"
                + (", the first 50:" if len(matches) > 50 else ":"))
    if len(matches):
        st.dataframe(pd.DataFrame([{"point": point_label(run, kind, pts, int(m), 200)} for m in matches[:50]]),
                     hide_index=True, width="stretch")

picked = url_choice("pick", "Nearest neighbours of", st.selectbox, keys, default=default,
                    format_func=lambda key: point_label(run, kind, pts, at_key[key]))
j = at_key.get(picked)

fig = space_figure(run, space, pts, colour, marks, matches, j, hits)
chart.plotly_chart(fig, width="stretch")

if j is None:
    st.caption("No point to pick.")
elif "nbrs" not in pts:
    st.caption("This run's projections have no neighbour tables: rerun train.py to add them.")
else:
    rows = neighbour_rows(run, kind, pts, j)
    st.caption(f"The {len(rows)} nearest projected points by cosine of the vectors (not of the 2-D layout), "
               "computed by train.py (faiss, exact).")
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
