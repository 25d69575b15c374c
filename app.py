"""URLLM Studio: `streamlit run app.py` (or `make demo`). Reads the runs train.py wrote
under artifacts/ (URLLM_ARTIFACTS elsewhere); never trains. The pages are in pages/."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from urllm.app.safe_text import escape_markdown as md
from urllm.app.ui import sidebar

st.set_page_config(page_title="URLLM Studio", layout="wide")
st.title("URLLM Studio")
sel = sidebar()
run, manifest = sel.run, sel.run.manifest

d = manifest["dataset"].get("describe", {})
# every value from the run goes through md(): shown as text, never as markdown
st.subheader(f"Run {md(run.name)}: {md(d.get('spec', manifest['dataset'].get('spec', '?')))}")
st.caption(f"created {md(manifest.get('created_at', '?'))} · git {md(str(manifest.get('git_commit'))[:10])} · "
           f"profile {md(manifest['config'].get('profile', '?'))} · {'complete' if manifest.get('complete') else 'INCOMPLETE'}")
if d:
    a, b = d["domains"]
    cols = st.columns(4)
    cols[0].metric("users", f"{d['n_users']:,}")
    cols[1].metric(f"{md(a)} items", f"{d['n_items'].get(a, 0):,}")
    cols[2].metric(f"{md(b)} items", f"{d['n_items'].get(b, 0):,}")
    cols[3].metric("interactions", f"{d['n_interactions']:,}")
    st.dataframe(
        pd.DataFrame(
            [{"split": s, "lines": n, "users": d["split_users"].get(s), **d["targets_per_domain"].get(s, {})}
             for s, n in d["splits"].items()]
        ),
        hide_index=True,
    )
st.caption("Stages")
st.dataframe(pd.DataFrame([{"stage": s["name"], "seconds": s["seconds"], "files": len(s["files"])} for s in manifest["stages"]]),
             hide_index=True)
if sel.line is not None:
    st.markdown(f"Selected: user **{md(sel.user)}**, target domain **{md(sel.domain)}**, "
                f"held-out item *{md(run.item_label(sel.line.target))}*. The pages in the sidebar show this user's "
                "sequence graph, neighbours, prompt, generations and embeddings.")
