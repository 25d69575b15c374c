"""Embeddings: UMAP projections (made by train.py's projections stage) of the dual-graph
model's item embeddings and of the test users' domain-specific vectors, coloured by
domain, with the selected user's history items and test line highlighted."""
from __future__ import annotations

import numpy as np
import streamlit as st

from urllm.app.figures import embedding_scatter
from urllm.app.safe_text import escape_markdown as md
from urllm.app.ui import guard, need, sidebar

st.set_page_config(page_title="Embeddings · URLLM Studio", layout="wide")
sel = sidebar()
run, line = sel.run, sel.line
st.title("Embeddings")
need(run, "data", "users to highlight")
need(run, "projections", "UMAP projections")
projections = guard(lambda: run.projections)

# one chart per view: thousands of WebGL points are most of what a page switch costs
kind = st.segmented_control("Points", ["Items", "Users"], default="Items", key="_emb_kind") or "Items"
if kind == "Items":
    history = list(dict.fromkeys(line.history))
    projected = set(projections["items_rows"].tolist())
    mine = [i for i in history if i in projected]
    st.caption(f"{len(mine)} of user {md(sel.user)}'s {len(history)} distinct history items are in the projected sample "
               f"of {len(projections['items_rows']):,} of {len(run.titles):,} items (outlined).")
    st.plotly_chart(embedding_scatter(run, "items", mine, f"history of user {sel.user}"), width="stretch")

else:
    sampled = bool(np.isin(line.index, projections["users_rows"]))
    st.caption(f"Each point is a test line (a user and a target domain), placed by its domain-specific user vector. "
               f"User {md(sel.user)} → {md(sel.domain)} is "
               + ("outlined." if sampled else f"not in the projected sample of {len(projections['users_rows']):,} lines."))
    st.plotly_chart(embedding_scatter(run, "users", [line.index] if sampled else None, f"user {sel.user} → {sel.domain}"),
                    width="stretch")
