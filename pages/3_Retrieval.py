"""Retrieval: the training users nearest to the selected test line, found with the run's
domain-specific user vectors (Eq. 14, what URLLM puts in its prompts) next to the
mixed-thread vectors (the ablation), with scores, sizes and the items they share with
the selected user's history."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from urllm.app.safe_text import escape_markdown as md
from urllm.app.ui import guard, need, sidebar

st.set_page_config(page_title="Retrieval · URLLM Studio", layout="wide")
sel = sidebar()
run, line = sel.run, sel.line
st.title("Retrieval")
need(run, "data", "users to retrieve for")
need(run, "retrieval", "neighbour index")

k = st.slider("neighbours (k)", 1, 20, min(max(run.main_k, 1), 20), key="_ret_k",
              help=f"the run's prompts use k = {run.main_k}")
methods = {"domain": "domain-specific (Eq. 14)", "mixed": "mixed (ablation)"}
found = {vector: guard(run.neighbours, line, k, vector) for vector in methods}

history = set(line.history)
st.markdown(f"User **{md(sel.user)}** (target domain **{md(sel.domain)}**, {len(line.history)} items in the history); "
            f"held-out target: *{md(run.item_label(line.target))}*")
both = {u for u, _ in found["domain"]} & {u for u, _ in found["mixed"]}
st.markdown(f"**{len(both)} of the {k}** neighbours are returned by both methods"
            + (f": {', '.join(md(run.user_ids[u]) for u in sorted(both))}" if both else "."))


def neighbour_rows(neighbours: list[tuple[int, float]]) -> list[dict]:
    rows = []
    for rank, (u, score) in enumerate(neighbours, 1):
        items = run.user_items(u)
        shared = [int(i) for i in dict.fromkeys(items.tolist()) if i in history]
        rows.append({"rank": rank, "user": run.user_ids[u], "score": round(score, 3), "items": len(items),
                     "overlap": len(shared), "has target": bool((items == line.target).any()),
                     "shared titles": "; ".join(run.titles[i] for i in shared)})
    return rows


for column, (vector, label) in zip(st.columns(2), methods.items()):
    with column:
        st.subheader(label)
        if not found[vector]:
            st.info("No neighbour found (the index holds no other user).")
            continue
        st.dataframe(pd.DataFrame(neighbour_rows(found[vector])), hide_index=True, width="stretch",
                     column_config={"shared titles": st.column_config.TextColumn(width="large")})
        for rank, (u, _) in enumerate(found[vector], 1):
            items = run.user_items(u)
            with st.expander(f"#{rank} user {md(run.user_ids[u])}: sequence of {len(items)} items"):  # a markdown label
                st.dataframe(pd.DataFrame([{"position": p, "domain": run.domains[int(run.item_domain[i])],
                                            "title": run.titles[i], "in the selected history": int(i) in history}
                                           for p, i in enumerate(items, 1)]),
                             hide_index=True, width="stretch", height=min(400, 38 + 35 * len(items)))
shown_items = run.max_neighbor_items
st.caption("Score: inner product of the user vectors. Overlap: distinct items of the neighbour that are also in the "
           f"selected user's history. A prompt shows the most recent {shown_items} items of each neighbour.")
