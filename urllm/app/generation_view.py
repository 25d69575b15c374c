"""What the Prompt and Generation pages display, as plain values (no streamlit here, so
it is unit-tested directly): prompt sections with their colours and token counts, the
budget policy's kept/dropped figures, and one `Column` per generation method (its
outputs with flag badges, its top-10 ranking with the held-out target marked).

Live results (urllm.llm.generate.Generation objects) are first turned into the plain
dicts generations.json stores (`plain_variants`), so precomputed and live results share
one display path.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from urllm.app.reader import Line, RunData
from urllm.app.safe_text import TEXT_LIMIT, escape_markdown, inline_code
from urllm.llm.prompt import SECTIONS, Prompt

# section -> (label, background, accent): the one palette of prompt sections, on the Prompt
# page and in the case-study export; "template" is the chat template and separators
SECTION_STYLE = {
    "instruction": ("Instruction", "#dbeafe", "#2563eb"),
    "neighbors": ("Neighbours", "#dcfce7", "#16a34a"),
    "history": ("History", "#ffedd5", "#ea580c"),
    "question": ("Question", "#ede9fe", "#7c3aed"),
    "template": ("Chat template", "#e5e7eb", "#6b7280"),
}
VARIANT_LABELS = {  # schema.RECORD_VARIANTS, in that order
    "free": "Free (unconstrained)",
    "constrained": "Constrained (title trie)",
    "candidates": "Candidates (dual-graph top-N trie)",
    "refined": "Refined (Algorithm 1)",
    "pipeline": "URLLM pipeline (Algorithm 1 + fusion)",
}
RERANK_LABEL = "URLLM re-ranker (LLM scores the dual-graph top-N)"
RSLLM_LABEL = "RSLLM (soft ID tokens, title trie)"
LLM4CDSR_LABEL = "LLM4CDSR (tri-thread model)"
TOP = 10  # ranking rows shown per column


# ---- prompt ---------------------------------------------------------------------------
def section_label(name: str, tokens: int) -> str:
    """The markdown label of a prompt section: `**History** · 49 tokens`."""
    return f"**{SECTION_STYLE[name][0]}** · {tokens} tokens"


def budget_summary(prompt: Prompt, uncapped: Prompt, cfg) -> list[str]:
    """One sentence per list (history, neighbours) saying how many items the prompt shows
    and why the others are missing. `uncapped` is the same prompt built without a token
    budget: its drops are the length caps' (cfg.max_history, cfg.max_neighbor_items)."""
    out = []
    for key, name, cap in (("history", "history", f"max_history={cfg.max_history}"),
                           ("neighbors", "neighbours' items", f"max_neighbor_items={cfg.max_neighbor_items}")):
        capped = uncapped.dropped.get(key, 0)
        by_budget = prompt.dropped.get(key, 0) - capped
        total = prompt.kept.get(key, 0) + prompt.dropped.get(key, 0)
        out.append(f"{name}: {prompt.kept.get(key, 0)} of {total} kept; "
                   f"{by_budget} dropped by the budget, {capped} beyond {cap}")
    return out


def prompt_differences(live: dict[str, str], stored: dict[str, str]) -> list[str]:
    """The sections whose text differs between two prompts (empty: the same prompt)."""
    return [name for name in SECTIONS if live.get(name, "") != stored.get(name, "")]


def token_bar(prompt: Prompt, budget: int):
    """A one-bar plotly figure: the prompt's tokens stacked by section, the budget marked."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name in (*SECTIONS, "template"):
        label, _, accent = SECTION_STYLE[name]
        n = prompt.tokens.get(name, 0)
        fig.add_bar(x=[n], y=["prompt"], orientation="h", name=f"{label} ({n})", marker_color=accent,
                    hovertemplate=f"{label}: {n} tokens<extra></extra>")
    fig.add_vline(x=budget, line_dash="dash", annotation_text=f"budget {budget}")
    fig.update_layout(barmode="stack", height=170, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="tokens",
                      yaxis_visible=False, legend_orientation="h", legend_y=-0.6)
    return fig


# ---- generations ----------------------------------------------------------------------
def plain_variants(generations: dict) -> dict[str, dict]:
    """{variant: Generation} from LiveModel.generate as generations.json stores it."""
    return {variant: {"ranking": [int(i) for i in g.ranking], "fell_back": bool(g.fell_back),
                      "outputs": [dataclasses.asdict(o) for o in g.outputs]}
            for variant, g in generations.items()}


def run_settings(run: RunData) -> tuple[int, int, int]:
    """(k, beams, max_new_tokens) the run's evaluation used: its precomputed records' settings."""
    gen = run.config.get("llm", {}).get("generation", {})
    return run.main_k, int(gen.get("num_beams", 10)), int(gen.get("max_new_tokens", 48))


def run_stamp(run: RunData) -> tuple[str, float]:
    """(run folder, manifest mtime): a cache key part that a rerun of train.py invalidates."""
    manifest = run.dir / "manifest.json"
    return str(run.dir), manifest.stat().st_mtime if manifest.is_file() else 0.0


def has_adapter(run: RunData) -> bool:
    """Whether LiveModel.load finds the run's LoRA adapter (else the base model is untuned);
    RunError when its files are corrupt."""
    return run.lora_adapter() is not None


def flag_badges(output: dict) -> str:
    """Markdown badges of one output's flags."""
    badges = [":green-badge[valid]" if output["valid"] else ":gray-badge[no item]"]
    if output["valid"]:
        badges.append(":blue-badge[in-domain]" if output["in_domain"] else ":red-badge[other domain]")
    if output["duplicate"]:
        badges.append(":orange-badge[duplicate]")
    return " ".join(badges)


def output_line(run: RunData, rank: int, output: dict) -> str:
    """`1. text → [art] matched title  badges` (markdown; the model's text as code, since a
    random LM writes anything)."""
    item = output["item"]
    matched = escape_markdown(run.item_label(item)) if item is not None else "no matching item"
    return f"{rank}\\. {inline_code(output['text'], TEXT_LIMIT)} → {matched} {flag_badges(output)}"


def ranking_rows(run: RunData, ranking: list[int], line: Line, top: int = TOP) -> list[dict]:
    return [{"#": r, "item": run.item_label(item), "target": "◀ target" if item == line.target else ""}
            for r, item in enumerate(ranking[:top], 1)]


def rank_text(run: RunData, ranking: list[int], line: Line) -> str:
    rank = run.target_rank(ranking, line)
    return f"target at rank **{rank}**" if rank else f"target not in top-{len(ranking)}"


@dataclass
class Column:
    label: str
    outputs: list[str]  # markdown lines; empty for a method without text outputs
    ranking: list[dict]  # ranking_rows
    rank: str  # rank_text
    note: str = ""


def variant_column(run: RunData, line: Line, label: str, record: dict) -> Column:
    """A column from one method's plain record ({ranking, fell_back, outputs})."""
    note = "fell back to the dual-graph ranking" if record.get("fell_back") else ""
    return Column(label, [output_line(run, r, o) for r, o in enumerate(record["outputs"], 1)],
                  ranking_rows(run, record["ranking"], line), rank_text(run, record["ranking"], line), note)


def profile_lines(run: RunData, line: Line) -> list[str]:
    """LLM4CDSR's hierarchical profile of the line's user: the summary of summaries, then
    each cluster's summary with its titles; [] when the line was not profiled."""
    profile = run.profile(line)
    if profile is None:
        return []
    out = [f"**Profile:** {escape_markdown(profile['text'], TEXT_LIMIT)}"]
    for n, cluster in enumerate(profile["clusters"], 1):
        titles = "; ".join(escape_markdown(run.item_label(i)) for i in cluster["items"][-3:])
        out.append(f"{n}. {escape_markdown(cluster['summary'], TEXT_LIMIT)} ({len(cluster['items'])} items, e.g. {titles})")
    return out


def profile_note(run: RunData, line: Line) -> str:
    if run.profile(line) is not None:
        return "user profile by the base LLM: k-means clusters of the history, a summary each, then one of those"
    n = len(run.profiles.get("test_lines", {}))
    return f"no user profile for this line (the run profiled {n} evaluated lines: profiles.test_lines)"


def rerank_lines(run: RunData, record: dict, top: int = 5) -> list[str]:
    """The re-ranked list's first items, each with its dual-graph place and both scores."""
    place = {item: r for r, item in enumerate(record["candidates"], 1)}
    at = {item: i for i, item in enumerate(record["candidates"])}
    out = []
    for r, item in enumerate(record["ranking"][:top], 1):
        i = at[item]
        out.append(f"{r}\\. {escape_markdown(run.item_label(item))} · dual-graph #{place[item]} "
                   f"(score {record['dual'][i]:.2f}) · LLM {record['llm'][i]:+.2f}")
    return out


def rerank_column(run: RunData, line: Line, record: dict) -> Column:
    weight = float(run.rerank.get("weight", 0.0))
    calibrated = "minus its score for a user with no history" if run.rerank.get("calibrate") else "uncalibrated"
    note = (f"LLM score: mean log-probability per title token after the prompt ({calibrated}); fused with the "
            f"dual-graph score at weight {weight:g}, chosen on validation lines"
            + (" (0: the LLM did not help there, so the list is the dual-graph ranking)" if weight == 0 else ""))
    return Column(RERANK_LABEL, rerank_lines(run, record), ranking_rows(run, record["ranking"], line),
                  rank_text(run, record["ranking"], line), note)


def method_columns(run: RunData, line: Line, variants: dict[str, dict]) -> list[Column]:
    """The Generation page's columns: the URLLM variants and the re-ranker, then the sibling
    methods the run holds for this line (RSLLM's stored outputs, LLM4CDSR's ranking), then
    the dual-graph ranking they build on."""
    columns = [variant_column(run, line, label, variants[v]) for v, label in VARIANT_LABELS.items() if v in variants]
    rerank = run.rerank_record(line)
    if rerank is not None:
        columns.append(rerank_column(run, line, rerank))
    rsllm = run.rsllm_record(line)
    if rsllm is not None:
        column = variant_column(run, line, RSLLM_LABEL, rsllm)
        column.note = (f"{rsllm.get('soft_tokens', 0)} soft tokens in the prompt; stored by train.py (the run's "
                       "settings, not the sliders)")
        columns.append(column)
    llm4cdsr = run.llm4cdsr_top(line)
    if llm4cdsr is not None:
        columns.append(Column(LLM4CDSR_LABEL, profile_lines(run, line), ranking_rows(run, llm4cdsr, line),
                              rank_text(run, llm4cdsr, line), profile_note(run, line)))
    dual = run.dual_graph_top(line)
    columns.append(Column("Dual-graph (stage 1)", [], ranking_rows(run, dual, line), rank_text(run, dual, line)))
    return columns
