"""Slices: every method's metrics on the test lines cut by one line attribute (cold-start,
history length, cross-domain switches, target popularity, target domain, LLM out of
domain; urllm/app/slices.py defines each and its bins), with 95% intervals and the paired
difference to dual_graph per value, and the lines of a value with every method's rank and
a link to the user. The dimension, the value and the metric live in the URL:
`?run=...&slice=history&value=6-10&metric=HR@10`."""
from __future__ import annotations

from urllib.parse import urlencode

import streamlit as st

from urllm.app.case_study import metric_rows, ordered_methods
from urllm.app.figures import interval_bars
from urllm.app.safe_text import escape_markdown as md
from urllm.app.safe_text import escape_plotly, inline_code
from urllm.app.slices import SLICES, SMALL, column, slice_columns, slice_metrics, slice_rows, values
from urllm.app.ui import guard, line_table, metric_tables, metrics_frame, need, sidebar, url_choice
from urllm.stats import METRIC_NAMES, REFERENCE

st.set_page_config(page_title="Slices · URLLM Studio", layout="wide")
sel = sidebar()
run = sel.run
st.title("Slices")
need(run, "dual_graph", "rankings to slice")

left, right = st.columns(2)
with left:
    dimension = url_choice("slice", "Slice the test lines by", st.selectbox, list(SLICES), default="cold_start",
                           format_func=lambda d: SLICES[d].label)
with right:
    metric = url_choice("metric", "Metric", st.selectbox, METRIC_NAMES, default="HR@10")
if st.session_state.get("_sl_last") not in (None, dimension):  # another dimension: its values differ
    st.query_params.pop("value", None)
    st.session_state.pop("_url_value", None)
st.session_state["_sl_last"] = dimension
st.caption(f"{SLICES[dimension].label}: {SLICES[dimension].help}.")

table = guard(lambda: slice_columns(run, line_table(run)))
parts = guard(slice_metrics, run, dimension, table, metric_tables) if run.line_ranks is not None and run.metrics else []

# ---- metrics per value ---------------------------------------------------------------------
st.header(f"{md(metric)} by {SLICES[dimension].label}")
if run.line_ranks is None or not run.metrics:
    st.info("Slicing needs the per-line ranks of a finished evaluation stage (line_ranks.json and the manifest's "
            "metrics), which this run lacks: rerunning the same train.py command adds them. Its lines are listed below.")
else:
    scored = [p for p in parts if p.table is not None]
    rows = []
    for p in scored:
        for r in metric_rows(p.table.metrics, "overall", (metric,)):
            lo, hi = p.table.metrics[r["method"]]["overall"].get("ci95", {}).get(metric) or (None, None)
            rows.append({"value": escape_plotly(p.value), "method": escape_plotly(r["method"]), metric: r[metric],
                         "n": p.n, "lo": lo, "hi": hi})
    if rows:
        fig = interval_bars(rows, "value", "method", metric, [escape_plotly(p.value) for p in scored],
                            [escape_plotly(m) for m in ordered_methods(scored[0].table.metrics)], height=420)
        fig.update_layout(xaxis_title=SLICES[dimension].label)
        st.plotly_chart(fig)
    st.caption("Each value's bars: every method on that value's lines only (n in the hover); error bars: 95% "
               "bootstrap intervals over those lines. Values are never pooled: compare methods within a value.")

    for tab, p in zip(st.tabs([f"{md(p.value)} ({p.n})" for p in parts]), parts):  # tab labels are markdown
        if p.n == 0:
            tab.info(f"{SLICES[dimension].label} {inline_code(p.value)}: no test line (an empty slice).")
            continue
        if p.table is None:
            tab.info(f"None of the {p.n} lines of {inline_code(p.value)} was scored by every method.")
            continue
        if p.n < SMALL:
            tab.warning(f"Only {p.n} test lines: the intervals are wide, and a difference to {REFERENCE} is hard "
                        "to tell from chance.")
        metrics_frame(tab, metric_rows(p.table.metrics, "overall", (metric,), delta_ci=True))
        tab.caption(f"Every method on the same {p.table.n} lines of {inline_code(p.value)}; [lo, hi]: 95% bootstrap "
                    f"intervals; Δ: the paired difference to {REFERENCE} on these lines, with its interval and a "
                    "sign-flip test's p-value.")

# ---- the lines of one value ----------------------------------------------------------------------
st.header("Lines of a slice")
options = values(run, dimension)
counts = {v: int((table[column(dimension)] == v).sum()) for v in options}
first = next((v for v in options if counts[v]), options[0] if options else None)
value = url_choice("value", "Open the lines of", st.selectbox, options, default=first,
                   format_func=lambda v: f"{v} ({counts.get(v, 0)} lines)")
shown = slice_rows(table, dimension, value).copy()
if shown.empty:
    st.info(f"{SLICES[dimension].label} {inline_code(value)}: no test line (an empty slice).")
else:
    shown.insert(0, "open", [f"Generation?{urlencode({'run': run.name, 'user': u, 'domain': d})}"
                             for u, d in zip(shown["user"], shown["domain"])])
    st.dataframe(shown, hide_index=True, placeholder="–", column_config={
        "open": st.column_config.LinkColumn("open", display_text="Generation ↗", help="this user on the Generation page")})
    small = f" Only {len(shown)} lines: intervals on them are wide." if len(shown) < SMALL else ""
    st.caption(f"{SLICES[dimension].label} {inline_code(value)}: {len(shown)} of the {len(table)} test lines.{small} "
               "Ranks are 1-based positions of the held-out target (–: not ranked or "
               "not scored); switch_share and target_count are the numbers the bins come from.")
