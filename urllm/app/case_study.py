"""One test line as a case study: what the run knows about it (history, held-out target,
dual-graph ranking, neighbour users, the precomputed prompt and LLM outputs, the sibling
methods' answers and LLM4CDSR's user profile, the run's metrics) as a JSON-ready dict,
and as one self-contained HTML page to keep or send (inline CSS; a figure comes with the
plotly library inlined, so the page opens offline). Also the metrics-table rows that the
Overview and Evaluation pages share. No streamlit here.

    study = case_study(run, line)                 # json.dumps(study) works
    page = case_study_html(study, sequence_graph(run, line))
"""
from __future__ import annotations

import html

from urllm.app.figures import DOMAIN_COLOURS
from urllm.app.generation_view import SECTION_STYLE
from urllm.app.reader import Line, RunData, group_by_line_count
from urllm.schema import METHODS, RECORD_VARIANTS
from urllm.stats import METRIC_NAMES, REFERENCE

ANSWER_RATES = ("ood_rate", "valid_rate", "dup_rate")  # LLM variants only, over every beam's answer
METRIC_COLUMNS = METRIC_NAMES + ANSWER_RATES
TOP_N = 10


def ordered_methods(metrics: dict) -> list[str]:
    """The fixed order of the paper's table first, then any other method (an extra baseline)."""
    return [m for m in METHODS if m in metrics] + [m for m in metrics if m not in METHODS]


def ci_column(metric: str) -> str:
    return f"{metric} 95% CI"


def delta_column(metric: str) -> str:
    return f"Δ {metric} vs {REFERENCE}"


def p_column(metric: str) -> str:
    return f"p ({metric})"


def interval(pair) -> str | None:
    return None if not pair else f"[{pair[0]:.4f}, {pair[1]:.4f}]"


def metric_rows(metrics: dict, scope: str = "overall", columns=METRIC_COLUMNS, delta_ci: bool = False) -> list[dict]:
    """One row per method: its `columns` on `scope` ("overall" or a domain name) and n, the
    number of test lines it was scored on; each rank metric with its 95% interval "[lo, hi]"
    and its paired difference to dual_graph and p-value (and the difference's interval with
    `delta_ci`). None where the run has no such value: an older run has no intervals, and
    dual_graph is the reference."""
    rows = []
    for method in ordered_methods(metrics):
        values = metrics[method].get(scope) if isinstance(metrics[method], dict) else None
        if not isinstance(values, dict):
            continue
        ci, vs = values.get("ci95") or {}, {} if method == REFERENCE else values.get("vs_dual_graph") or {}
        row = {"method": method}
        for c in columns:
            row[c] = values.get(c)
            if c in METRIC_NAMES:
                test = vs.get(c) or {}
                row[ci_column(c)] = interval(ci.get(c))
                row[delta_column(c)] = test.get("delta")
                if delta_ci:
                    row[f"{delta_column(c)} 95% CI"] = interval(test.get("ci95"))
                row[p_column(c)] = test.get("p")
        rows.append(row | {"n": values.get("n")})
    return rows


def ordered_variants(variants) -> list[str]:
    return [v for v in RECORD_VARIANTS if v in variants] + [v for v in variants if v not in RECORD_VARIANTS]


def _item(run: RunData, item: int) -> dict:
    return {"id": int(item), "title": run.titles[item], "domain": run.domains[int(run.item_domain[item])]}


def case_study(run: RunData, line: Line, k: int | None = None) -> dict:
    """Everything the run holds about `line`, with item titles; `k` neighbours (default: the run's)."""
    k = run.main_k if k is None else int(k)
    notes = []
    study = {
        "run": run.name, "dataset": run.manifest["dataset"].get("spec"), "line": line.index,
        "user": run.user_ids[line.user], "target_domain": run.domains[line.domain], "domains": list(run.domains),
        "cold_start": run.cold_start(line), "target": _item(run, line.target),
        "history": [_item(run, i) for i in line.history], "k": k,
        "dual_graph": None, "neighbours": None, "prompt": None, "outputs": None,
        "rerank": rerank(run, line), "siblings": siblings(run, line), "metrics": run.metrics, "notes": notes,
    }
    if run.has("dual_graph"):
        ranking = run.dual_graph_top(line)
        study["dual_graph"] = {"top": [_item(run, i) for i in ranking[:TOP_N]],
                               "target_rank": run.target_rank(ranking, line), "ranked": len(ranking)}
    else:
        notes.append("The run has no dual_graph stage: no dual-graph ranking.")
    if run.has("retrieval"):
        recent = run.max_neighbor_items
        study["neighbours"] = [
            {"user": run.user_ids[u], "score": round(score, 4),
             "recent_items": [_item(run, i) for i in run.user_items(u)[-recent:]]}
            for u, score in run.neighbours(line, k)]
    else:
        notes.append("The run has no retrieval stage: no neighbour users.")

    record = run.precomputed(line, k)
    if record is None:
        notes.append(f"No precomputed prompt or generations for this line with k={k}: the generation stage ran "
                     "with other k values or on a sample of the test lines (the Generation page can run it live).")
        return study
    study["prompt"] = {"sections": record["prompt"], "tokens": record["tokens"], "total_tokens": sum(record["tokens"].values())}
    study["outputs"] = {variant: _answers(run, line, record["variants"][variant])
                        for variant in ordered_variants(record["variants"])}
    return study


def _answers(run: RunData, line: Line, stored: dict) -> dict:
    """One LLM method's stored record ({outputs, ranking, fell_back}) with item titles."""
    return {"outputs": [{"text": o["text"], "item": None if o["item"] is None else _item(run, o["item"]),
                         "valid": o["valid"], "in_domain": o["in_domain"], "duplicate": o["duplicate"]}
                        for o in stored["outputs"]],
            "ranking": [_item(run, i) for i in stored["ranking"][:TOP_N]],
            "target_rank": run.target_rank(stored["ranking"], line),
            "fell_back": stored.get("fell_back", False)}


def rerank(run: RunData, line: Line) -> dict | None:
    """"urllm_rerank" on the line: the fused list, each item with its dual-graph place and
    both scores, and the weight chosen on valid; None when the run did not re-rank the line."""
    record = run.rerank_record(line)
    if record is None:
        return None
    at = {item: i for i, item in enumerate(record["candidates"])}
    return {"weight": float(run.rerank.get("weight", 0.0)), "calibrate": bool(run.rerank.get("calibrate", False)),
            "target_rank": run.target_rank(record["ranking"], line),
            "ranking": [_item(run, i) | {"dual_graph_rank": at[i] + 1, "dual_score": record["dual"][at[i]],
                                         "llm_score": record["llm"][at[i]]} for i in record["ranking"]]}


def siblings(run: RunData, line: Line) -> dict:
    """RSLLM's stored answers and LLM4CDSR's ranking and user profile for the line (None
    for what the run does not hold)."""
    out: dict = {"rsllm": None, "llm4cdsr": None}
    rsllm = run.rsllm_record(line)
    if rsllm is not None:
        out["rsllm"] = _answers(run, line, rsllm)
    top = run.llm4cdsr_top(line)
    if top is not None:
        profile = run.profile(line)
        out["llm4cdsr"] = {"top": [_item(run, i) for i in top[:TOP_N]], "target_rank": run.target_rank(top, line),
                           "profile": None if profile is None else {
                               "text": profile["text"],
                               "clusters": [{"summary": c["summary"], "items": [_item(run, i) for i in c["items"]]}
                                            for c in profile["clusters"]]}}
    return out


# ---- HTML ------------------------------------------------------------------------------
CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.6em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .92em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
tr.target td { font-weight: bold; background: #fff7c2; }
.dom { display: inline-block; padding: 0 .4em; border-radius: .3em; color: white; font-size: .85em; }
.section { border-radius: .4em; padding: .6em .8em; margin: .6em 0; }
.section h3 { margin: 0 0 .3em; font-size: 1em; }
pre { white-space: pre-wrap; margin: 0; font-size: .9em; }
.note { color: #555; font-style: italic; }
"""


def _e(value) -> str:
    return html.escape(str(value))


def _num(value) -> str:
    return "" if value is None else f"{value:.4f}" if isinstance(value, float) else _e(value)


def _table(header: list[str], rows: list[list[str]], classes: list[str] | None = None) -> str:
    """rows hold ready HTML cells; classes: a CSS class per row ("" for none)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(f'<tr class="{c}">' + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
                   for row, c in zip(rows, classes or [""] * len(rows)))
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'


def _dom(study: dict, name: str) -> str:
    colour = DOMAIN_COLOURS[study["domains"].index(name) % len(DOMAIN_COLOURS)] if name in study["domains"] else "#777"
    return f'<span class="dom" style="background:{colour}">{_e(name)}</span>'


def _items_table(study: dict, items: list[dict], first: str) -> str:
    """Numbered items (rank or position), the held-out target highlighted."""
    target = study["target"]["id"]
    return _table([first, "domain", "title", "id"],
                  [[str(n), _dom(study, it["domain"]), _e(it["title"]), str(it["id"])] for n, it in enumerate(items, 1)],
                  ["target" if it["id"] == target else "" for it in items])


def _rank(rank) -> str:
    return "not in the ranking" if rank is None else f"rank {rank}"


def _outputs_html(s: dict, name: str, v: dict) -> str:
    rows = [[str(n), f"<pre>{_e(o['text'])}</pre>", "" if o["item"] is None else _e(o["item"]["title"]),
             *("yes" if o[flag] else "no" for flag in ("valid", "in_domain", "duplicate"))]
            for n, o in enumerate(v["outputs"], 1)]
    fell = " · fell back to the dual-graph ranking" if v["fell_back"] else ""
    return (f"<h3>{_e(name)}</h3><p>Target: {_rank(v['target_rank'])}{fell}.</p>"
            + _table(["beam", "text", "item", "valid", "in domain", "duplicate"], rows)
            + f"<details><summary>top {TOP_N} of the final ranking</summary>"
            + _items_table(s, v["ranking"], "rank") + "</details>")


def _rerank_html(s: dict) -> list[str]:
    r = s.get("rerank")
    if not r:
        return []
    target = s["target"]["id"]
    rows = [[str(n), _dom(s, it["domain"]), _e(it["title"]), str(it["dual_graph_rank"]), f"{it['dual_score']:.2f}",
             f"{it['llm_score']:+.2f}"] for n, it in enumerate(r["ranking"], 1)]
    return [f"<h2>URLLM re-ranker</h2><p>The LLM scored the dual-graph top {len(rows)}; fused at weight "
            f"{r['weight']:g} (chosen on validation lines). Target: {_rank(r['target_rank'])}.</p>",
            _table(["rank", "domain", "title", "dual-graph rank", "dual-graph score", "LLM score"], rows,
                   ["target" if it["id"] == target else "" for it in r["ranking"]])]


def _siblings_html(s: dict) -> list[str]:
    sib = s.get("siblings") or {}
    parts = []
    if sib.get("rsllm") or sib.get("llm4cdsr"):
        parts.append("<h2>Sibling methods</h2>")
    if sib.get("rsllm"):
        parts.append(_outputs_html(s, "RSLLM (soft-token prompt, title trie)", sib["rsllm"]))
    if sib.get("llm4cdsr"):
        g = sib["llm4cdsr"]
        parts.append(f"<h3>LLM4CDSR</h3><p>Target: {_rank(g['target_rank'])}.</p>")
        if g["profile"]:
            clusters = "".join(f"<li>{_e(c['summary'])} <span class=\"note\">("
                               + "; ".join(_e(it["title"]) for it in c["items"][-3:]) + ")</span></li>"
                               for c in g["profile"]["clusters"])
            parts.append(f"<p><b>User profile</b> (base LLM, summary of cluster summaries): {_e(g['profile']['text'])}</p>"
                         f"<ol>{clusters}</ol>")
        parts.append(f"<details><summary>top {TOP_N}</summary>" + _items_table(s, g["top"], "rank") + "</details>")
    return parts


def case_study_html(study: dict, figure=None) -> str:
    """The study as one HTML page with no outside resource: every text escaped."""
    s, t = study, study["target"]
    parts = [
        f"<h1>Case study: user {_e(s['user'])}, target domain {_e(s['target_domain'])}</h1>",
        f"<p>Run <b>{_e(s['run'])}</b> · dataset <code>{_e(s['dataset'])}</code> · test line {s['line']} · "
        f"{len(s['history'])} items in the history{' · cold-start' if s['cold_start'] else ''} · k = {s['k']} neighbours</p>",
        f"<h2>Held-out target</h2><p>{_dom(s, t['domain'])} <b>{_e(t['title'])}</b> (item {t['id']})</p>",
    ]
    if figure is not None:
        parts.append("<h2>Sequence graph</h2>" + figure.to_html(full_html=False, include_plotlyjs=True))
    parts.append("<h2>History (oldest first)</h2>" + _items_table(s, s["history"], "#"))

    if s["dual_graph"]:
        g = s["dual_graph"]
        parts.append(f"<h2>Dual-graph top {TOP_N}</h2><p>Target: {_rank(g['target_rank'])} of {g['ranked']} ranked.</p>"
                     + _items_table(s, g["top"], "rank"))
    if s["neighbours"] is not None:
        rows = [[_e(n["user"]), _num(n["score"]),
                 "<br>".join(f"{_dom(s, it['domain'])} {_e(it['title'])}" for it in n["recent_items"])]
                for n in s["neighbours"]]
        parts.append(f"<h2>Neighbour users (k = {s['k']})</h2>"
                     + (_table(["user", "score", "recent items"], rows) if rows else '<p class="note">k = 0: no neighbours.</p>'))

    if s["prompt"]:
        p = s["prompt"]
        parts.append(f"<h2>Prompt ({p['total_tokens']} tokens)</h2>")
        for name, text in p["sections"].items():
            _, background, accent = SECTION_STYLE.get(name, (name, "#f4f4f4", "#777"))
            parts.append(f'<div class="section" style="background:{background};border-left:4px solid {accent}">'
                         f'<h3>{_e(name)} · {p["tokens"].get(name, 0)} tokens</h3>'
                         f"<pre>{_e(text) if text else '(empty)'}</pre></div>")
    if s["outputs"]:
        parts.append("<h2>LLM outputs</h2>")
        for variant, v in s["outputs"].items():
            parts.append(_outputs_html(s, variant, v))

    parts += _rerank_html(s)
    parts += _siblings_html(s)
    for group in group_by_line_count(s["metrics"] or {}):
        rows = metric_rows(group.metrics)
        header = [c for c in rows[0] if c != "method" and any(r[c] is not None for r in rows)] if rows else []
        line_set = next(iter(group.metrics.values())).get("lines", {}).get("set") or f"scored on {group.n} test lines"
        parts.append(f"<h2>Run metrics ({_e(line_set)}, n = {group.n})</h2>"
                     + _table(["method", *header], [[_e(r["method"])] + [_num(r[c]) for c in header] for r in rows]))
    if s["notes"]:
        parts.append("<h2>Notes</h2><ul>" + "".join(f'<li class="note">{_e(n)}</li>' for n in s["notes"]) + "</ul>")

    title = f"Case study {s['run']} · user {s['user']} · {s['target_domain']}"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
