"""Generation: what the run's LLM answers for the selected line, variant by variant side by
side (free text, beam search constrained to the target domain's titles, constrained to
the dual-graph candidates, and free text refined by Algorithm 1), each with its outputs'
flags (valid item, in the target domain, duplicate) and its top-10 ranking with the
held-out target marked, next to the dual-graph ranking they build on. Lines train.py
evaluated show their stored results at once (at the run's settings); any other line or
setting is generated live with the run's model on request."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from urllm.app.generation_view import has_adapter, method_columns, plain_variants, run_settings, run_stamp
from urllm.app.safe_text import escape_markdown as md
from urllm.app.safe_text import inline_code
from urllm.app.ui import error_text, guard, live_model, need, open_run, sidebar
from urllm.llm.prompt import PromptTooLong

st.set_page_config(page_title="Generation · URLLM Studio", layout="wide")


@st.cache_data(show_spinner=False, max_entries=64)
def generate(folder: str, stamp: float, name: str, line_index: int, k: int, beams: int, max_new_tokens: int) -> dict:
    """Live generation for one line and setting, as plain dicts (the model stays out of the key)."""
    run = open_run(name)
    live = live_model(run)
    line = run.test_lines[line_index]
    prompt = live.prompt(line, run.neighbours(line, k))
    generations, seconds = live.generate(line, prompt.text, beams, max_new_tokens)
    return {"variants": plain_variants(generations), "seconds": seconds, "prompt_tokens": prompt.n_tokens,
            "tuned": live.tuned}


def ranking_table(rows: list[dict]):
    """The top-10 with the held-out target's row highlighted."""
    table = pd.DataFrame(rows, columns=["#", "item", "target"])
    return table.style.apply(lambda row: ["background-color: #fde68a" if row["target"] else ""] * len(row), axis=1)


sel = sidebar()
run, line = sel.run, sel.line
st.title("Generation")
need(run, "retrieval", "retrieved neighbours for the prompt")
if line is None:
    st.info("Pick a user with a test line in the sidebar.")
    st.stop()

run_k, run_beams, run_tokens = guard(run_settings, run)
left, middle, right = st.columns(3)
k = left.slider("Neighbours k", 0, 5, min(run_k, 5), key=f"_gen_k_{run.name}")
beams = middle.slider("Beams (outputs per variant)", 1, 10, min(max(run_beams, 1), 10), key=f"_gen_beams_{run.name}")
max_new_tokens = right.slider("Max new tokens", 8, 64, min(max(run_tokens, 8), 64), key=f"_gen_tokens_{run.name}")
st.markdown(f"User **{md(sel.user)}**, target domain **{md(sel.domain)}**; held-out target: "
            f"**{md(run.item_label(line.target))}**.")
if not guard(has_adapter, run):
    st.warning(f"No LoRA adapter in {inline_code(run.label('lora/'))}: live generation uses the untuned base model.")

at_run_settings = (beams, max_new_tokens) == (run_beams, run_tokens)
record = guard(run.precomputed, line, k) if at_run_settings else None
requested = st.session_state.setdefault("_gen_requested", set())  # settings generated live this session
setting = (run.name, line.index, k, beams, max_new_tokens)
if st.button("Generate live", key="_gen_live", help="Run the model now with these settings (cached per setting)."):
    requested.add(setting)

variants = {}
if setting in requested:
    folder, stamp = run_stamp(run)
    try:
        with st.spinner(f"Generating: {beams} beams, up to {max_new_tokens} new tokens, 4 variants ..."):
            result = guard(generate, folder, stamp, run.name, line.index, k, beams, max_new_tokens)
    except PromptTooLong as err:
        st.error(f"This line's prompt does not fit the model: {error_text(err)}.")
        st.stop()
    variants = result["variants"]
    model = "base model + LoRA adapter" if result["tuned"] else "untuned base model"
    st.caption(f"Generated live in {result['seconds']:.2f} s ({model}, prompt of {result['prompt_tokens']} tokens, "
               f"k = {k}).")
elif record is not None:
    variants = record["variants"]
    st.caption(f"Precomputed by train.py at the run's settings (k = {k}, {run_beams} beams, "
               f"{run_tokens} new tokens); press Generate live to run the model again.")
else:
    evaluated = guard(run.precomputed, line) is not None
    why = "these settings differ from the run's" if evaluated else "train.py did not evaluate this line"
    st.info(f"No stored generations here ({why}): press **Generate live**. The dual-graph ranking is shown meanwhile.")

columns = method_columns(run, line, variants)
PER_ROW = 3  # wide enough for titles in the ranking tables
boxes = [box for start in range(0, len(columns), PER_ROW) for box in st.columns(PER_ROW)]
for column, box in zip(columns, boxes):
    with box:
        st.subheader(column.label)
        st.markdown(column.rank)
        if column.note:
            st.caption(column.note)
        for output in column.outputs:
            st.markdown(output)
        st.dataframe(ranking_table(column.ranking), hide_index=True)
if "pipeline" in variants:
    st.caption(f"URLLM pipeline: Algorithm 1's list when it falls back, else the dual-graph ranking fused with the "
               f"LLM's grounded items at weight {run.fusion_weight:g}, the weight train.py chose on validation lines "
               "(0: the LLM did not help there, so the list is the dual-graph ranking).")
