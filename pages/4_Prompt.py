"""Prompt: the LLM input assembled for the selected user and target domain (URLLM step 3),
rebuilt live with the run's tokenizer as the neighbour count k and the token budget move.
Each section (instruction, neighbours' sequences, the user's history, the question) is
shown in its own coloured block with its token count, a stacked bar compares them with
the budget, and the budget policy says how many items it dropped. When the line was
evaluated by train.py the page says whether this prompt is the one the run used."""
from __future__ import annotations

import html

import streamlit as st

from urllm.app.generation_view import SECTION_STYLE, budget_summary, prompt_differences, section_label, token_bar
from urllm.app.safe_text import escape_markdown as md
from urllm.app.ui import error_text, guard, need, run_prompts, sidebar
from urllm.llm.prompt import SECTIONS, PromptTooLong

st.set_page_config(page_title="Prompt · URLLM Studio", layout="wide")
sel = sidebar()
run, line = sel.run, sel.line
st.title("Prompt")
need(run, "retrieval", "retrieved neighbours for the prompt")
if line is None:
    st.info("Pick a user with a test line in the sidebar.")
    st.stop()

prompts = guard(run_prompts, run)  # the run's tokenizer alone: no model is loaded here
default_budget = prompts.config.max_tokens
left, right = st.columns(2)
budget = left.slider("Token budget (max_tokens, chat template included)", 64, max(2048, default_budget),
                     default_budget, key=f"_prompt_budget_{run.name}")
k = right.slider("Neighbours k", 0, 5, min(run.main_k, 5), key=f"_prompt_k_{run.name}")

neighbours = guard(run.neighbours, line, k)
try:
    prompt = prompts.prompt(line, neighbours, budget)
except PromptTooLong as err:
    st.error(f"No prompt fits a budget of {budget} tokens: {error_text(err)}.")
    st.stop()
uncapped = prompts.prompt(line, neighbours, 10**9)  # same items without a budget: what the caps alone drop

st.markdown(f"User **{md(sel.user)}**, target domain **{md(sel.domain)}**, k = {k}: **{prompt.n_tokens}** tokens "
            f"of a budget of {budget}.")
st.plotly_chart(token_bar(prompt, budget), width="stretch")
st.markdown("**Budget policy** (while over budget, drop the oldest item of the longest list):\n"
            + "".join(f"- {s}\n" for s in budget_summary(prompt, uncapped, prompts.config)))

for name in SECTIONS:
    _, background, accent = SECTION_STYLE[name]
    st.markdown(section_label(name, prompt.tokens[name]))
    empty = "(no neighbours at k = 0)" if k == 0 else "(every neighbour item dropped by the budget)"
    body = prompt.sections[name] or empty
    st.markdown(f'<div style="background:{background};border-left:4px solid {accent};color:#111;padding:0.5em 0.8em;'
                f'white-space:pre-wrap;font-family:monospace;font-size:0.9em">{html.escape(body)}</div>',
                unsafe_allow_html=True)
st.markdown(section_label("template", prompt.tokens["template"]) + " (special tokens and separators around sections)")

record = guard(run.precomputed, line, k)
if record is not None:
    differ = prompt_differences(prompt.sections, record["prompt"])
    if not differ:
        st.success(f"This prompt is the one the run used in evaluation (k = {k}).")
    else:
        why = (f"at the run's own budget, so the prompt code changed since the run was made "
               f"(git {md(str(run.manifest.get('git_commit'))[:10])})" if budget == default_budget
               else f"the run used a budget of {default_budget}")
        st.warning(f"This prompt differs from the one the run evaluated with k = {k} in: {', '.join(differ)} ({why}).")
        with st.expander("The prompt the run evaluated (sections)"):
            st.code("\n\n".join(text for text in record["prompt"].values() if text), language=None)
elif guard(run.precomputed, line) is not None:
    st.caption(f"The run evaluated this line with k in {run.generations.get('ks')}, not k = {k}.")

st.download_button("Download the full prompt", prompt.text, file_name=f"prompt_{run.name}_{sel.user}_{sel.domain}.txt",
                   mime="text/plain", key="_prompt_download")
with st.expander("Model input (chat template applied)"):
    st.code(prompt.text, language=None)
