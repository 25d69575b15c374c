"""Evaluation: the test metrics of every method per target domain, with 95% intervals and
the paired difference to dual_graph, every method on the same lines (and rescored on the
lines the per-user filters select); how often each LLM variant names an item of the wrong
domain (or no item, or the same item twice); the effect of the number of retrieved
neighbours; a per-user table of results with filters and a link that opens the user on
the Generation page; and the case-study export (JSON and a self-contained HTML page) of
the user picked in the sidebar."""
from __future__ import annotations

import json
from urllib.parse import urlencode

import pandas as pd
import plotly.express as px
import streamlit as st

from urllm.app.case_study import ANSWER_RATES, case_study, case_study_html, metric_rows, ordered_methods
from urllm.app.figures import DOMAIN_COLOURS, interval_bars, sequence_graph
from urllm.app.reader import LEGACY_NOTE, filter_lines
from urllm.app.safe_text import escape_markdown as md
from urllm.app.safe_text import escape_plotly
from urllm.app.ui import guard, line_table, metric_tables, metrics_frame, need, sidebar
from urllm.stats import METRIC_NAMES, REFERENCE

st.set_page_config(page_title="Evaluation · URLLM Studio", layout="wide")
sel = sidebar()
run, line = sel.run, sel.line
st.title("Evaluation")
need(run, "dual_graph", "rankings to evaluate")

# ---- metrics per method and domain -----------------------------------------------------
st.header("Metrics per method")
metrics = run.metrics
metric = st.selectbox("metric", METRIC_NAMES, index=METRIC_NAMES.index("HR@10"), key="_ev_metric")
scopes = ["overall", *run.domains]
# plotly shows method and domain names (keys of the run's files) as HTML: escaped
colours = {"overall": "#7f7f7f"} | {escape_plotly(d): c for d, c in zip(run.domains, DOMAIN_COLOURS)}


def bar_chart(group) -> None:
    """The metric per method and scope, error bars from the 95% intervals."""
    rows = []
    for scope in scopes:
        for r in metric_rows(group.metrics, scope, (metric,)):
            lo, hi = group.metrics[r["method"]][scope].get("ci95", {}).get(metric) or (None, None)
            rows.append({"method": escape_plotly(r["method"]), "scope": escape_plotly(scope), metric: r[metric],
                         "n": r["n"], "lo": lo, "hi": hi})
    fig = interval_bars(rows, "method", "scope", metric, [escape_plotly(m) for m in ordered_methods(group.metrics)],
                        [escape_plotly(s) for s in scopes], colours, height=380)
    st.plotly_chart(fig)


if not metrics:
    st.info("No metrics yet: train.py writes them into the manifest once every stage has finished.")
else:
    groups = guard(metric_tables, run)
    if any(g.legacy for g in groups):
        st.info(LEGACY_NOTE)
    if not groups:
        st.info("No test line was scored by every method (line_ranks.json), so no metrics to compare.")
    for group in groups:
        bar_chart(group)
        for tab, scope in zip(st.tabs([md(s) for s in scopes]), scopes):  # tab labels are markdown
            metrics_frame(tab, metric_rows(group.metrics, scope, (metric,), delta_ci=True))
        st.caption(group.caption + ("" if group.legacy else
                   f" Error bars and [lo, hi]: 95% bootstrap intervals over these lines; Δ: the paired difference to "
                   f"{REFERENCE} on the same lines, with its interval and a sign-flip test's p-value."))

    st.header("LLM answers: out-of-domain, valid, duplicate")
    rates = pd.DataFrame([{"variant": escape_plotly(r["method"]), "rate": rate, "share of answers": r[rate]}
                          for r in metric_rows(metrics, columns=ANSWER_RATES) for rate in ANSWER_RATES if r[rate] is not None])
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
    st.header("Effect of k, the neighbours in the prompt" if len(per_k) > 1 else "Methods on the generation lines")
    ks = sorted(per_k, key=int)
    rows_per_k = {k: metric_rows(per_k[k], columns=(metric, "ood_rate")) for k in ks}
    by_k = [pd.DataFrame(rows).set_index("method").drop(columns="n").rename(columns=lambda c: f"{c} (k={k})")
             for k, rows in rows_per_k.items() if rows]
    metrics_frame(st, pd.concat(by_k, axis=1).dropna(how="all") if by_k else [])
    sample = per_k[ks[0]].get("dual_graph", {}).get("overall", {}).get("n", "?")
    st.caption(f"From generations.json: every number here, dual_graph included, is on the generation lines "
               f"({sample} test lines), with the same intervals and paired tests as above"
               + ("." if len(per_k) > 1 else f"; the run generated with k = {ks[0]} only."))

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
           "(–: not ranked, or the method was not scored on the line); `<variant>_ood` counts the answers naming an item "
           "of the other domain.")
if metrics and 0 < len(shown) < len(table):  # the filters pick a subset: rescore every method on it
    st.subheader(f"{metric} on the lines shown")
    subset = guard(metric_tables, run, shown["line"])
    if run.line_ranks is None:
        st.info("Rescoring a subset of lines needs the per-line ranks (line_ranks.json), which this run predates: "
                "rerunning the same train.py command adds them.")
    elif not subset:
        st.info("No shown line was scored by every method.")
    else:
        metrics_frame(st, metric_rows(subset[0].metrics, "overall", (metric,), delta_ci=True))
        st.caption(subset[0].caption + f" Rescored from line_ranks.json, with intervals and paired tests against {REFERENCE}.")

# ---- case-study export ---------------------------------------------------------------------
st.header("Case-study export")
if line is None:
    st.info("Pick a user with a test line in the sidebar to export a case study.")
    st.stop()
study = guard(case_study, run, line)
st.markdown(f"User **{md(sel.user)}**, target domain **{md(sel.domain)}** (pick another in the sidebar or open a row's "
            f"link): held-out *{md(study['target']['title'])}*, dual-graph rank "
            f"{(study['dual_graph'] or {}).get('target_rank') or '–'}"
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
