"""Overview: the run's dataset in figures, the test metrics of every method and LLM variant
(overall and per target domain, with 95% intervals and the paired difference to dual_graph,
every method on the same lines), the training curves of one stage-1 model or of the LoRA
fine-tune at a time (`?curve=dual_graph`), and what each stage of train.py cost. An incomplete run shows what its
finished stages hold and names the missing ones."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from urllm.app.case_study import metric_rows
from urllm.app.reader import LEGACY_NOTE
from urllm.app.safe_text import escape_markdown as md
from urllm.app.safe_text import inline_code
from urllm.app.ui import guard, metric_tables, metrics_frame, sidebar, url_choice
from urllm.schema import CURVE_METHODS, STAGES
from urllm.stats import REFERENCE

LORA = "LoRA fine-tune"  # the curve choice beside the stage-1 models
LOSSES = ("ce", "infomax", "align", "contrastive", "profile", "total")  # whichever a model logs

st.set_page_config(page_title="Overview · URLLM Studio", layout="wide")
sel = sidebar()
run, manifest = sel.run, sel.run.manifest
st.title(f"Overview of run {md(run.name)}")

done = [s["name"] for s in manifest["stages"]]
missing = [s for s in STAGES if s not in done]
if not manifest.get("complete"):
    st.warning(f"This run is incomplete: {len(done)} of {len(STAGES)} stages finished; missing: "
               f"{', '.join(missing) or 'none (train.py stopped before writing the metrics)'}. "
               "The sections below show what the finished stages hold.")
elif missing:
    st.info(f"This run was made before the stages {', '.join(missing)} existed, so it has no results for them. "
            "Rerunning the same train.py command adds them.")

# ---- dataset ---------------------------------------------------------------------------
st.header("Dataset")
d = manifest["dataset"].get("describe")
if not d:
    st.info("The manifest has no dataset description (the data stage has not finished).")
else:
    st.caption(inline_code(d.get('spec', manifest['dataset'].get('spec'))))
    cols = st.columns(5)
    cols[0].metric("users", f"{d['n_users']:,}")
    for col, name in zip(cols[1:3], d["domains"]):
        col.metric(f"{md(name)} items", f"{d['n_items'].get(name, 0):,}")
    cols[3].metric("interactions", f"{d['n_interactions']:,}")
    cols[4].metric("users in both domains", f"{d.get('users_in_both_domains', 0):,}")
    left, right = st.columns(2)
    with left:
        st.caption("Sequence length (items per user)")
        st.dataframe(pd.DataFrame([d["sequence_length"]]), hide_index=True)
    with right:
        st.caption("Splits: test lines per target domain")
        st.dataframe(pd.DataFrame([{"split": s, "lines": n, "users": d["split_users"].get(s),
                                    **d["targets_per_domain"].get(s, {})} for s, n in d["splits"].items()]),
                     hide_index=True)

# ---- metrics ---------------------------------------------------------------------------
st.header("Test metrics")
if not run.metrics:
    st.info("No metrics yet: train.py writes them into the manifest once every stage has finished.")
else:
    groups = guard(metric_tables, run)
    legacy = any(g.legacy for g in groups)
    if legacy:
        st.info(LEGACY_NOTE)
    if not groups:
        st.info("No test line was scored by every method (line_ranks.json), so no metrics to compare.")
    scopes = ["overall", *run.domains]
    for group in groups:
        for tab, scope in zip(st.tabs([md(s) for s in scopes]), scopes):  # tab labels are markdown
            metrics_frame(tab, metric_rows(group.metrics, scope))  # the LLM rates exist overall only
        st.caption(group.caption)
    st.caption("HR/NDCG/MRR over the held-out target of each test line"
               + ("; " if legacy else f", with the 95% interval of a bootstrap over lines, and the paired difference "
                  f"to {REFERENCE} on the same lines with its sign-flip test's p-value; ")
               + "ood_rate / valid_rate / dup_rate: share of LLM answers naming an item of the other domain / any "
               "catalogue item / an item already answered.")

# ---- training curves -------------------------------------------------------------------
st.header("Training curves")


def line_chart(rows: list[dict], x: str, ys: list[str], title: str) -> go.Figure:
    fig = go.Figure([go.Scatter(x=[r[x] for r in rows], y=[r.get(y) for r in rows], mode="lines+markers", name=y) for y in ys])
    fig.update_layout(title=title, xaxis_title=x, height=300, margin=dict(l=10, r=10, t=40, b=10))
    return fig


curves = {m: guard(run.curve, m) for m in CURVE_METHODS}
summaries = {s["name"]: s.get("summary") or {} for s in manifest["stages"]}
trained = [m for m in CURVE_METHODS if curves[m]]
lora = guard(run.lora_report)
# one model's curves at a time: every plotly chart costs the browser ~60 ms on a page switch,
# and tabs would draw all nine hidden ones too
choices = trained + ([LORA] if lora else [])
if not choices:
    st.info("No training curve yet (the stage-1 models and the LoRA fine-tune write them).")
else:
    shown = url_choice("curve", "Model", st.segmented_control, choices, default=choices[0]) or choices[0]
    if shown == LORA:
        st.plotly_chart(line_chart(lora["curve"], "step", ["loss"], "LoRA: loss on the answer tokens"))
        cfg = lora.get("config", {})
        st.caption(f"{len(lora['curve'])} steps in {lora.get('seconds', 0):.1f} s ({lora.get('tokens_per_s', 0):,.0f} tokens/s); "
                   f"r = {md(cfg.get('r'))}, alpha = {md(cfg.get('alpha'))}, lr = {md(cfg.get('lr'))}, "
                   f"batch {md(cfg.get('batch_size'))}, modules {md(', '.join(cfg.get('target_modules', [])))}.")
    else:
        curve = curves[shown]
        left, right = st.columns(2)
        left.plotly_chart(line_chart(curve, "epoch", [c for c in LOSSES if c in curve[0]], f"{shown}: training loss"))
        right.plotly_chart(line_chart(curve, "epoch", ["valid_HR@10", "valid_MRR"], f"{shown}: validation"))
        best = summaries.get(shown, {}).get("best_epoch")
        st.caption(f"{len(curve)} epochs in {curve[-1]['seconds']:.1f} s"  # seconds are counted from the start
                   + (f"; the model of epoch {md(best)} (best validation MRR) is kept." if best else "."))
if trained and not lora:
    st.info("No LoRA curve: the run has no finished lora stage.")

# ---- stages ----------------------------------------------------------------------------
st.header("Stages")
st.dataframe(pd.DataFrame([{"stage": s["name"], "seconds": s["seconds"], "files": len(s.get("files", [])),
                            "summary": ", ".join(f"{k}={v}" for k, v in (s.get("summary") or {}).items())}
                           for s in manifest["stages"]]), hide_index=True)
st.caption(f"{sum(s['seconds'] for s in manifest['stages']):.1f} s in all"
           + (f"; not run yet: {', '.join(missing)}." if missing else "."))
