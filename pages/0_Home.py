"""Home: the run in one screen, for a stakeholder demo: the dataset in four figures, every
method's headline metric with its 95% interval and its paired difference to the dual-graph
model, and a few test lines worth opening (where the LLM helped most and hurt most, where
it left the target domain, a cold-start user), each a link to the page that shows it."""
from __future__ import annotations

from urllib.parse import urlencode

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from urllm.app.highlights import ALPHA, headline, notable_lines
from urllm.app.reader import LEGACY_NOTE
from urllm.app.safe_text import escape_markdown as md
from urllm.app.safe_text import escape_plotly, inline_code
from urllm.app.ui import guard, line_table, metric_tables, sidebar, url_choice
from urllm.stats import METRIC_NAMES, REFERENCE

VERDICT_COLOURS = {"above": "#2ca02c", "below": "#d62728", "tie": "#7f7f7f", "reference": "#1f77b4", None: "#7f7f7f"}

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

# ---- headline: every method against the dual-graph model --------------------------------------
st.header("Does the LLM help?")
groups = guard(metric_tables, run) if run.metrics else []
if not groups:
    st.info("No metrics yet: train.py writes them once every stage has finished (the Overview page shows the "
            "finished stages).")
else:
    if groups[0].legacy:
        st.info(LEGACY_NOTE)
    metric = url_choice("metric", "headline metric", st.segmented_control, METRIC_NAMES, default="MRR") or "MRR"
    rows = headline(groups[0].metrics, metric)
    ci = [r["ci95"] or (r["value"], r["value"]) for r in rows]
    fig = go.Figure(go.Scatter(
        x=[r["value"] for r in rows], y=[escape_plotly(r["method"]) for r in rows], mode="markers",
        marker=dict(size=11, color=[VERDICT_COLOURS[r["verdict"]] for r in rows]),
        error_x=dict(type="data", symmetric=False, array=[hi - r["value"] for r, (_, hi) in zip(rows, ci)],
                     arrayminus=[r["value"] - lo for r, (lo, _) in zip(rows, ci)]),
        hovertext=[f"Δ vs {REFERENCE} {r['delta']:+.4f}, p {r['p']:.3g}" if r["p"] is not None else "" for r in rows]))
    reference = next((r["value"] for r in rows if r["method"] == REFERENCE), None)
    if reference is not None:
        fig.add_vline(x=reference, line=dict(color=VERDICT_COLOURS["reference"], dash="dot"))
    fig.update_layout(height=80 + 30 * len(rows), margin=dict(l=10, r=10, t=10, b=10), xaxis_title=metric,
                      yaxis=dict(autorange="reversed"), showlegend=False)
    st.plotly_chart(fig)
    above = [r["method"] for r in rows if r["verdict"] == "above"]
    llm_above = [m for m in above if m.startswith(("urllm", "rsllm"))]
    st.markdown(f"{groups[0].caption} Dots: {metric} with its 95% bootstrap interval; green is significantly above "
                f"{REFERENCE} (the dotted line), red below, grey a tie (paired sign-flip test at the {ALPHA:.0%} level). "
                + (f"**Above {REFERENCE}:** {md(', '.join(above))}. " if above else f"**No method is above {REFERENCE}.** ")
                + ("" if llm_above else f"No LLM method is significantly above {REFERENCE} on {metric}."))

# ---- notable lines -----------------------------------------------------------------------------
st.header("Lines worth opening")
table = guard(line_table, run) if run.has("data") else None
picks = notable_lines(table)
if not picks:
    st.info("No notable line yet: the run has no ranked test lines.")
else:
    st.dataframe(pd.DataFrame([{
        "what": p["kind"], "why": p["why"], "user": p["user"], "domain": p["domain"], "target": p["target"],
        "open": f"{p['page']}?{urlencode({'run': run.name, 'user': p['user'], 'domain': p['domain']})}"} for p in picks]),
        hide_index=True, width="stretch", column_config={
            "open": st.column_config.LinkColumn("open", display_text="open ↗", help="this line on its page")})
    st.caption("Picked from every method's rank on every test line (line_ranks.json); the Slices and Evaluation pages "
               "list every line.")

if sel.line is not None:
    st.markdown(f"Selected: user **{md(sel.user)}**, target domain **{md(sel.domain)}**, "
                f"held-out item *{md(run.item_label(sel.line.target))}*. The pages in the sidebar show this user's "
                "sequence graph, neighbours, prompt, generations and embeddings.")
with st.expander("Stages of this run"):
    st.dataframe(pd.DataFrame([{"stage": s["name"], "seconds": s["seconds"], "files": len(s["files"])}
                               for s in manifest["stages"]]), hide_index=True)
    st.caption(f"Made by {inline_code('python train.py')} (the resolved config is on the Overview page).")
