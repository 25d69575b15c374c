"""Sequence graph: the selected user's interleaved cross-domain history as a time-ordered
graph (one lane per domain, the held-out target at the end), a short summary of the test
line, and the item-graph neighbourhood (most frequent next items in the training
sequences) of any item of the history."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from urllm.app.figures import item_neighbourhood_graph, sequence_graph
from urllm.app.safe_text import escape_markdown as md
from urllm.app.ui import guard, need, sidebar

st.set_page_config(page_title="Sequence graph · URLLM Studio", layout="wide")
sel = sidebar()
run, line = sel.run, sel.line
st.title("Sequence graph")
need(run, "data", "user sequences")

history = list(line.history)
seen = set(history)
per_domain = [int((run.item_domain[history] == d).sum()) for d in range(len(run.domains))]

cols = st.columns(5)
for d, name in enumerate(run.domains):
    cols[d].metric(f"{md(name)} events", per_domain[d])  # metric labels and values are markdown
cols[2].metric("target domain", md(sel.domain))
cols[3].metric("cold-start", "yes" if run.cold_start(line) else "no",
               help="at most 2 items of the target domain in the history")
if run.has("dual_graph"):
    top = guard(run.dual_graph_top, line)
    cols[4].metric("dual-graph rank of the target", run.target_rank(top, line) or f"> {len(top)}")
st.markdown(f"User **{md(sel.user)}**, held-out target: *{md(run.item_label(line.target))}*")

shown = len(history)
if shown > 60:  # long histories (MovieLens: hundreds of events) start with the most recent 60
    shown = st.slider("events shown (the most recent)", 10, min(500, shown), 60, step=10, key="_seq_max")
left, right = st.columns(2)
labels = left.toggle("titles on the nodes", value=len(history) <= 30, key="_seq_labels",
                     help="hover shows every full title either way")
overlay = []
if run.has("retrieval") and right.toggle("overlay the retrieved neighbours' recent items", key="_seq_overlay"):
    k = max(run.main_k, 1)
    overlay = [(u, score, run.user_items(u)[-run.max_neighbor_items:].tolist()) for u, score in guard(run.neighbours, line, k)]
st.plotly_chart(sequence_graph(run, line, max_items=shown, labels=labels, neighbours=overlay), width="stretch")
st.caption("Nodes in time order, one lane per domain; grey edges stay in a domain, dashed red edges switch "
           "domains. The star is the held-out item the recommenders must predict."
           + (f" Below: the {len(overlay)} retrieved neighbour users' most recent items (the ones their prompt section "
              "carries), ending under this user's last event; a black ring marks an item this user also has, a gold "
              "ring the held-out target." if overlay else ""))

st.subheader("Item graph neighbourhood")
recent_first = list(dict.fromkeys(reversed(history)))  # each item once, the most recent first
if not recent_first:
    st.info("This test line has an empty history.")
    st.stop()
item = st.selectbox("item of the history", recent_first, format_func=run.item_label, key="_seq_item")
neighbours = run.item_neighbourhood(item, 10)
st.plotly_chart(item_neighbourhood_graph(run, item, 10), width="stretch")
if neighbours:
    st.dataframe(pd.DataFrame([{"title": run.titles[i], "domain": run.domains[int(run.item_domain[i])], "count": c,
                                "in this history": i in seen} for i, c in neighbours]),
                 hide_index=True, width="stretch")
    st.caption("Counts: how often the item came right after the picked one in the training lines' histories.")
