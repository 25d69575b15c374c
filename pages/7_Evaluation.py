"""Evaluation: the test metrics of every method per target domain, how often each LLM
variant names an item of the wrong domain (or no item, or the same item twice), the effect
of the number of retrieved neighbours, a per-user table of results with filters and a link
that opens the user on the Generation page, and the case-study export (JSON and a
self-contained HTML page) of the user picked in the sidebar."""
from __future__ import annotations

import json
from urllib.parse import urlencode

import pandas as pd
import plotly.express as px
import streamlit as st

from urllm.case_study import ANSWER_RATES, RANK_METRICS, case_study, case_study_html, metric_rows, ordered_methods
from urllm.figures import DOMAIN_COLOURS, sequence_graph
from urllm.runs import filter_lines
from urllm.ui import guard, line_table, need, sidebar

st.set_page_config(page_title="Evaluation · URLLM Studio", layout="wide")
sel = sidebar()
run, line = sel.run, sel.line
st.title("Evaluation")
need(run, "dual_graph", "rankings to evaluate")

# ---- metrics per method and domain -----------------------------------------------------
metrics = run.metrics
if not metrics:
    st.info("No metrics yet: train.py writes them into the manifest once every stage has finished.")
else:
    st.header("Metrics per method")
    metric = st.selectbox("metric", RANK_METRICS, index=RANK_METRICS.index("HR@10"), key="_ev_metric")
    bars = pd.DataFrame([{"method": r["method"], "scope": scope, metric: r[metric], "n": r["n"]}
                         for scope in ["overall", *run.domains] for r in metric_rows(metrics, scope)])
    colours = {"overall": "#7f7f7f"} | dict(zip(run.domains, DOMAIN_COLOURS))  # domains as on the other pages
    fig = px.bar(bars, x="method", y=metric, color="scope", barmode="group", hover_data=["n"],
                 category_orders={"method": ordered_methods(metrics)}, color_discrete_map=colours)
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=30, b=10))
    st.plotly_chart(fig)
    st.caption("n (hover): test lines scored. The LLM variants (urllm_*) are scored on the generation stage's sample "
               "of test lines; a table further down compares them with dual_graph on that same sample.")

    st.header("LLM answers: out-of-domain, valid, duplicate")
    rates = pd.DataFrame([{"variant": r["method"], "rate": rate, "share of answers": r[rate]}
                          for r in metric_rows(metrics) for rate in ANSWER_RATES if r[rate] is not None])
    if rates.empty:
        st.info("The run has no LLM variant metrics (no finished generation stage).")
    else:
        fig = px.bar(rates, x="variant", y="share of answers", color="rate", barmode="group", range_y=[0, 1])
        fig.update_layout(height=340, margin=dict(l=10, r=10, t=30, b=10))
        st.plotly_chart(fig)
        st.caption("Over every beam's answer: ood = names a real item of the other domain, valid = names a real item, "
                   "duplicate = the same item as an earlier beam. Constrained decoding cannot leave the domain's titles; "
                   "free text can.")

# ---- retrieval k -------------------------------------------------------------------------
per_k = run.generations.get("metrics", {})
if per_k:
    st.header("Effect of k, the neighbours in the prompt" if len(per_k) > 1 else "Methods on the generation sample")
    methods = ordered_methods(next(iter(per_k.values())))
    by_k = pd.DataFrame({f"{name} (k={k})": {m: per_k[k].get(m, {}).get("overall", {}).get(name) for m in methods}
                          for name in ("HR@10", "ood_rate") for k in sorted(per_k, key=int)})
    number = st.column_config.NumberColumn(format="%.4f")
    st.dataframe(by_k.dropna(how="all"), placeholder="–", column_config={c: number for c in by_k})
    sample = next(iter(per_k.values()))["dual_graph"]["overall"]["n"] if "dual_graph" in methods else "?"
    st.caption(f"On the generation sample ({sample} test lines), dual_graph included for reference"
               + ("." if len(per_k) > 1 else f"; the run generated with k = {next(iter(per_k))} only."))

# ---- per-user results ----------------------------------------------------------------------
st.header("Per-user results")
table = guard(line_table, run)
left, middle, right = st.columns(3)
domains = left.multiselect("target domain", run.domains, default=run.domains, key="_ev_domains")
hit = middle.radio("dual-graph top-10", ["all", "hit", "miss"], horizontal=True, key="_ev_hit")
cold = right.checkbox("cold-start only", key="_ev_cold", help="at most 2 items of the target domain in the history")
evaluated = right.checkbox("evaluated only", key="_ev_evaluated", help="lines with precomputed LLM generations")
ood = right.checkbox("OOD cases only", key="_ev_ood", help="a free or refined answer named an item of the other domain")

shown = filter_lines(table, cold, hit, ood, evaluated, domains).copy()
shown.insert(0, "open", [f"Generation?{urlencode({'run': run.name, 'user': u, 'domain': d})}"
                         for u, d in zip(shown["user"], shown["domain"])])
st.dataframe(shown, hide_index=True, placeholder="–", column_config={
    "open": st.column_config.LinkColumn("open", display_text="Generation ↗", help="this user on the Generation page")})
st.caption(f"{len(shown)} of {len(table)} test lines. Ranks are 1-based positions of the held-out target "
           "(–: not in the list); <variant>_ood counts the answers naming an item of the other domain.")

# ---- case-study export ---------------------------------------------------------------------
st.header("Case-study export")
if line is None:
    st.info("Pick a user with a test line in the sidebar to export a case study.")
    st.stop()
study = guard(case_study, run, line)
st.markdown(f"User **{sel.user}**, target domain **{sel.domain}** (pick another in the sidebar or open a row's link): "
            f"held-out *{study['target']['title']}*, dual-graph rank {(study['dual_graph'] or {}).get('target_rank') or '–'}"
            + ("" if study["prompt"] else "; no precomputed generations for this line (the export says so)."))


def html_page() -> str:
    """Built on click (the inlined plotly library makes it a few MB)."""
    return case_study_html(study, sequence_graph(run, line))


stem = f"case_{run.name}_{sel.user}_{sel.domain}"
left, right = st.columns(2)
left.download_button("Case study (JSON)", json.dumps(study, indent=2), file_name=f"{stem}.json",
                     mime="application/json", key="_ev_json")
right.download_button("Case study (HTML, opens offline)", html_page, file_name=f"{stem}.html",
                      mime="text/html", key="_ev_html")
