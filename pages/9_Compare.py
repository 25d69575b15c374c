"""Compare: the sidebar's run (a) against a second run (b) of the same dataset, line by
line: the settings that differ, every shared method's metric in each run with 95%
intervals and the paired difference b - a on the lines both runs scored (interval, p), and
a per-line table of rank changes (improved / hurt / unchanged) whose rows open that user
on the Generation page of either run. The comparison is in the URL (`?run=a&compare=b`)
and in the export."""
from __future__ import annotations

import json
from urllib.parse import urlencode

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from urllm.app.case_study import case_study, ordered_methods
from urllm.app.compare import CHANGES, CompareError, comparison_export, config_diff, line_changes, pair_runs
from urllm.app.reader import list_runs
from urllm.app.safe_text import escape_markdown as md
from urllm.app.safe_text import escape_plotly, inline_code
from urllm.app.ui import compared_methods, guard, open_run, sidebar, url_choice
from urllm.stats import METRIC_NAMES

st.set_page_config(page_title="Compare · URLLM Studio", layout="wide")
sel = sidebar()
run_a = sel.run
st.title("Compare two runs")

others = [r for r in list_runs() if r != run_a.name]
if not others:
    st.info(f"Only run {inline_code(run_a.name)} is here. Make a second run of the same dataset with other settings, "
            f"e.g. {inline_code(f'python train.py --out artifacts/{run_a.name}-k0 --set llm.k=0')}, then compare them.")
    st.stop()
name_b = url_choice("compare", "Compare with (run b)", st.selectbox, others)
run_b = guard(open_run, name_b)
try:
    pair = guard(pair_runs, run_a, run_b)
except CompareError as err:
    st.error(md(str(err)))
    st.stop()

st.markdown(f"Run a: {inline_code(run_a.name)} (the sidebar's run) · run b: {inline_code(run_b.name)} · dataset "
            f"{inline_code(str(run_a.manifest['dataset'].get('spec', '?')))} · **{pair.n:,}** common test lines "
            f"(a has {len(run_a.test_lines):,}, b has {len(run_b.test_lines):,}).")
differences = config_diff(pair)
with st.expander(f"Settings that differ ({len(differences)})", expanded=bool(differences) and len(differences) <= 8):
    if differences:
        st.dataframe(pd.DataFrame([{k: str(v) for k, v in d.items()} for d in differences]), hide_index=True, width="stretch")
    else:
        st.caption("The two runs have the same resolved config (another seed of the code, another machine, or a rerun).")

# ---- metric differences per method --------------------------------------------------------
metric = url_choice("metric", "metric", st.selectbox, METRIC_NAMES, default="HR@10")
rows = [r for r in guard(compared_methods, pair, metric) if r["n"]]
if not rows:
    st.info("No method was scored on a line both runs hold.")
    st.stop()


def interval(pair_) -> str:
    return f"[{pair_[0]:.4f}, {pair_[1]:.4f}]"


table = pd.DataFrame([{"method": r["method"], "n": r["n"], f"{metric} a": r["a"], "a 95% CI": interval(r["a_ci95"]),
                       f"{metric} b": r["b"], "b 95% CI": interval(r["b_ci95"]), "Δ b − a": r["delta"],
                       "Δ 95% CI": interval(r["delta_ci95"]), "p": r["p"],
                       **{c: r[c] for c in CHANGES}} for r in rows]).set_index("method")
fig = go.Figure(go.Scatter(
    x=[r["delta"] for r in rows], y=[escape_plotly(r["method"]) for r in rows], mode="markers",
    error_x=dict(type="data", symmetric=False, array=[r["delta_ci95"][1] - r["delta"] for r in rows],
                 arrayminus=[r["delta"] - r["delta_ci95"][0] for r in rows]),
    marker=dict(size=9, color=["#2ca02c" if r["delta_ci95"][0] > 0 else "#d62728" if r["delta_ci95"][1] < 0 else "#7f7f7f"
                               for r in rows]),
    hovertext=[f"n {r['n']}, p {r['p']:.3g}" for r in rows]))
fig.add_vline(x=0, line=dict(color="#999", dash="dot"))
fig.update_layout(height=60 + 28 * len(rows), margin=dict(l=10, r=10, t=30, b=10), xaxis_title=f"Δ {metric}, b − a",
                  yaxis=dict(autorange="reversed"), title=f"{metric}: run b minus run a, 95% paired interval")
st.plotly_chart(fig)
st.dataframe(table, column_config={c: st.column_config.NumberColumn(format="%.4f") for c in table.columns
                                   if c.startswith(metric) or c == "p"} | {"Δ b − a": st.column_config.NumberColumn(format="%+.4f")})
st.caption(f"Each method on the lines both runs scored it on (n). [lo, hi]: 95% bootstrap intervals over those lines; "
           f"Δ: the paired difference b − a on the same lines, its paired-bootstrap interval and a sign-flip test's p. "
           f"Green: b above a beyond noise; red: below. {', '.join(CHANGES)}: lines whose target rank moved up, down, "
           "or stayed in b.")

# ---- per-line changes -----------------------------------------------------------------------
st.header("Line by line")
methods = ordered_methods({r["method"]: None for r in rows})
left, right = st.columns(2)
with left:
    method = url_choice("method", "method", st.selectbox, methods, default="urllm" if "urllm" in methods else "dual_graph")
with right:
    change = url_choice("change", "lines", st.segmented_control, ["all", *CHANGES], default="all") or "all"
lines = line_changes(pair, method)
shown = lines if change == "all" else lines[lines["change"] == change]


def link(run: str):
    return [f"Generation?{urlencode({'run': run, 'user': u, 'domain': d})}" for u, d in zip(shown["user"], shown["domain"])]


shown = shown.assign(open_a=link(run_a.name), open_b=link(run_b.name)).sort_values(
    "rank_change", key=lambda s: -s.abs(), na_position="last")
st.dataframe(shown, hide_index=True, placeholder="–", width="stretch", column_config={
    "open_a": st.column_config.LinkColumn("run a", display_text="Generation a ↗", help="this user in run a"),
    "open_b": st.column_config.LinkColumn("run b", display_text="Generation b ↗", help="this user in run b"),
    "rank_change": st.column_config.NumberColumn("rank change (b − a)", help="negative: the target moved up in run b")})
st.caption(f"{len(shown):,} of {len(lines):,} common lines, the largest moves first (click a header to sort). Ranks are "
           f"{md(method)}'s 1-based full ranks of the held-out target; –: not scored in that run.")

# ---- export -----------------------------------------------------------------------------------
st.header("Export")
line = sel.line


def export() -> str:
    """Built on click: every metric's tests and two case studies take a moment."""
    data = comparison_export(pair, method, run_a.seed)
    if line is not None:
        match = lines[lines["line_a"] == line.index]
        data["selected"] = {"a": case_study(run_a, line), "b": None if match.empty else
                            case_study(run_b, run_b.test_lines[int(match["line_b"].iloc[0])])}
    return json.dumps(data, indent=1)


st.download_button("Comparison with the selected user's case study in both runs (JSON)", export,
                   file_name=f"compare_{run_a.name}_vs_{run_b.name}.json", mime="application/json", key="_cmp_json")
st.caption("Both runs' names, the settings that differ, every metric's paired differences per method, this method's "
           "per-line changes and, for the user picked in the sidebar, the case study in each run.")
