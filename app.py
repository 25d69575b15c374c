"""URLLM Studio app: `streamlit run app.py` (or `make demo`). Reads runs under artifacts/."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from urllm.runs import RunError, list_runs, load_manifest

st.set_page_config(page_title="URLLM Studio", layout="wide")
st.title("URLLM Studio")

runs = list_runs()
if not runs:
    st.info("No runs yet. Make one with `make demo` or `python train.py --dataset movielens --out artifacts/demo`.")
    st.stop()

wanted = st.query_params.get("run")
if wanted and wanted not in runs:
    st.warning(f"Run {wanted!r} from the link is not under artifacts/; showing {runs[0]!r}.")
name = st.sidebar.selectbox("Run", runs, index=runs.index(wanted) if wanted in runs else 0)
st.query_params["run"] = name

try:
    manifest = load_manifest(name)
except RunError as err:
    st.error(str(err))
    st.stop()

d = manifest["dataset"].get("describe", {})
st.subheader(f"Run {name}: {d.get('spec', '?')}")
if d:
    a, b = d["domains"]
    cols = st.columns(4)
    cols[0].metric("users", f"{d['n_users']:,}")
    cols[1].metric(f"{a} items", f"{d['n_items'][a]:,}")
    cols[2].metric(f"{b} items", f"{d['n_items'][b]:,}")
    cols[3].metric("interactions", f"{d['n_interactions']:,}")
    st.dataframe(
        pd.DataFrame(
            [{"split": s, "lines": n, "users": d["split_users"][s], **d["targets_per_domain"][s]} for s, n in d["splits"].items()]
        ),
        hide_index=True,
    )
stages = pd.DataFrame([{"stage": s["name"], "seconds": s["seconds"], "files": len(s["files"])} for s in manifest["stages"]])
st.caption("Stages")
st.dataframe(stages, hide_index=True)
if not manifest.get("complete"):
    st.caption("This run holds only the stages listed above.")
