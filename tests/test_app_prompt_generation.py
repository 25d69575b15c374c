"""The Prompt and Generation pages on the tiny run (its random tiny LM is deterministic, so
the pages must show exactly what LiveModel returns), and the display helpers of
urllm/app/generation_view.py."""
from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from app_fixtures import ROOT, copy_run, run_page, texts

from urllm.app.generation_view import LLM4CDSR_LABEL as LLM4CDSR
from urllm.app.generation_view import (
    RERANK_LABEL,
    SECTION_STYLE,
    VARIANT_LABELS,
    budget_summary,
    escape_markdown,
    flag_badges,
    method_columns,
    output_line,
    plain_variants,
    prompt_differences,
    rank_text,
    ranking_rows,
    section_label,
    token_bar,
)
from urllm.app.generation_view import RSLLM_LABEL as RSLLM
from urllm.app.reader import RunData, read_tensors
from urllm.llm.generate import Generation, Output
from urllm.llm.prompt import SECTIONS, Prompt, PromptTooLong

PROMPT, GENERATION = "pages/4_Prompt.py", "pages/5_Generation.py"


@pytest.fixture(scope="module")
def tiny(tiny_artifacts) -> RunData:
    return RunData.open("tiny", tiny_artifacts)


@pytest.fixture(scope="module")
def live(tiny):
    from urllm.app.live import LiveModel

    return LiveModel.load(tiny)


def url(run: RunData, line) -> dict:
    return {"run": run.name, "user": run.user_ids[line.user], "domain": run.domains[line.domain]}


def evaluated_line(run: RunData):
    return run.test_lines[run.generations["lines"][0]]


def with_unevaluated_line(tiny_artifacts, tmp_path):
    """(artifacts, run, line): a copy of the tiny run in which one test line has no
    precomputed generations, no re-ranked list and no RSLLM record. train.py now generates for every test
    line; a run made with llm.eval_lines=N has such lines, and the app must handle them."""
    arts = copy_run(tiny_artifacts, tmp_path)
    folder = arts / "tiny"
    for name in ("generations.json", "rsllm.json", "rerank.json"):
        data = json.loads((folder / name).read_text())
        line = data["lines"][-1]
        at = data["lines"].index(line)
        data["lines"].pop(at)
        data["records"].pop(str(line))
        ranks = data.get("ranks", {})
        for per_method in ([ranks] if name != "generations.json" else [r for per_k in ranks.values() for r in per_k.values()]):
            per_method.pop(at)
        (folder / name).write_text(json.dumps(data))
    run = RunData.open("tiny", arts)
    return arts, run, run.test_lines[line]


def run_k(run: RunData) -> int:
    return run.config["llm"]["k"]


def method_blocks(at) -> dict:
    """The Generation page's method columns by their heading."""
    return {c.subheader[0].value: c for c in at.columns if len(c.subheader)}


def no_live_generation(monkeypatch):
    from urllm.app.live import LiveModel

    def refuse(*args, **kwargs):
        raise AssertionError("the page ran the model")

    monkeypatch.setattr(LiveModel, "generate", refuse)


# ---- Prompt page ----------------------------------------------------------------------------
def test_prompt_page_shows_each_section_with_the_builders_token_counts(tiny, live, tiny_artifacts, monkeypatch):
    line = evaluated_line(tiny)
    at = run_page(PROMPT, monkeypatch, tiny_artifacts, **url(tiny, line))
    assert not at.exception
    assert at.selectbox(key="_pick_user").value == tiny.user_ids[line.user]
    expected = live.prompt(line, tiny.neighbours(line, run_k(tiny)), tiny.config["llm"]["prompt"]["max_tokens"])
    shown = texts(at)
    labels = {"instruction": "Instruction", "neighbors": "Neighbours", "history": "History", "question": "Question",
              "template": "Chat template"}
    for name, label in labels.items():
        assert f"**{label}** · {expected.tokens[name]} tokens" in shown
    assert expected.sections["history"].splitlines()[-1] in shown  # the section's text is in its block
    assert f"**{expected.n_tokens}** tokens" in shown
    assert "one the run used in evaluation" in at.success[0].value  # same prompt as generations.json
    assert at.download_button[0].label == "Download the full prompt"
    assert len(at.get("plotly_chart")) == 1


def test_prompt_budget_and_k_rebuild_the_prompt_and_a_budget_too_small_says_so(tiny, live, tiny_artifacts, monkeypatch):
    line = evaluated_line(tiny)
    at = run_page(PROMPT, monkeypatch, tiny_artifacts, **url(tiny, line))
    at.slider(key="_prompt_budget_tiny").set_value(130).run()
    assert not at.exception
    neighbours = tiny.neighbours(line, run_k(tiny))
    small, uncapped = live.prompt(line, neighbours, 130), live.prompt(line, neighbours, 10**9)
    by_budget = sum(small.dropped.values()) - sum(uncapped.dropped.values())
    assert by_budget > 0
    shown = texts(at)
    for sentence in budget_summary(small, uncapped, live.prompt_config):
        assert sentence in shown
    run_budget = tiny.config["llm"]["prompt"]["max_tokens"]
    assert f"the run used a budget of {run_budget}" in at.warning[0].value

    at.slider(key="_prompt_k_tiny").set_value(0).run()
    assert not at.exception and "**Neighbours** · 0 tokens" in texts(at)

    at.slider(key="_prompt_budget_tiny").set_value(64).run()
    assert not at.exception
    assert "No prompt fits a budget of 64" in at.error[0].value and "minimal prompt" in at.error[0].value
    assert not at.download_button


def test_the_prompt_page_loads_no_model(tiny, live, tiny_artifacts, tmp_path, monkeypatch):
    from urllm.app.live import LiveModel

    def refuse(*args, **kwargs):
        raise AssertionError("the Prompt page loaded the model")

    monkeypatch.setattr(LiveModel, "load", refuse)
    arts = copy_run(tiny_artifacts, tmp_path)  # another folder: nothing cached by an earlier test
    line = evaluated_line(tiny)
    at = run_page(PROMPT, monkeypatch, arts, **url(tiny, line))
    assert not at.exception and not at.error
    expected = live.prompt(line, tiny.neighbours(line, run_k(tiny)))
    assert f"**{expected.n_tokens}** tokens" in texts(at)
    assert "one the run used in evaluation" in at.success[0].value


def test_the_run_prompts_build_the_live_models_prompt_without_torch(tiny, live, tiny_artifacts):
    """RunPrompts (the run's tokenizer alone) in a fresh interpreter: the prompt of the
    live model (base model and adapter loaded), and torch never imported."""
    line = evaluated_line(tiny)
    code = f"""
import json, sys
from pathlib import Path
from urllm.app.live import RunPrompts
from urllm.app.reader import RunData

run = RunData.open("tiny", Path({str(tiny_artifacts)!r}))
line = run.test_lines[{line.index}]
prompt = RunPrompts.load(run).prompt(line, run.neighbours(line, {run_k(tiny)}))
print(json.dumps({{"text": prompt.text, "tokens": prompt.tokens, "heavy": [m for m in ("torch", "peft") if m in sys.modules]}}))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["heavy"] == []
    expected = live.prompt(line, tiny.neighbours(line, run_k(tiny)))
    assert got["text"] == expected.text and got["tokens"] == expected.tokens


def test_a_run_generated_with_another_k_than_configured_shows_that_k_everywhere(tiny, tiny_artifacts, tmp_path,
                                                                                monkeypatch):
    """llm.k = 3 but generated with ks = [1]: the run's prompts and numbers are k = 1's."""
    from urllm.app.case_study import case_study

    arts = copy_run(tiny_artifacts, tmp_path)
    folder = arts / "tiny"
    for name, change in (("manifest.json", lambda m: m["config"]["llm"].update(k=3)),
                         ("generations.json", lambda g: g.update(k=3, ks=[1]))):
        data = json.loads((folder / name).read_text())
        change(data)
        (folder / name).write_text(json.dumps(data))
    run, line = RunData.open("tiny", arts), evaluated_line(tiny)
    assert run.main_k == 1 and run.precomputed(line) == run.precomputed(line, 1)
    assert case_study(run, line)["k"] == 1
    for page, slider in ((PROMPT, "_prompt_k_tiny"), ("pages/3_Retrieval.py", "_ret_k"), (GENERATION, "_gen_k_tiny")):
        at = run_page(page, monkeypatch, arts, **url(run, line))
        assert not at.exception and at.slider(key=slider).value == 1, page
    assert "Precomputed by train.py at the run's settings (k = 1" in texts(at)  # the Generation page


def test_the_case_study_colours_the_prompt_sections_like_the_prompt_page(tiny, tiny_artifacts, monkeypatch):
    from urllm.app.case_study import case_study, case_study_html

    line = evaluated_line(tiny)
    at = run_page(PROMPT, monkeypatch, tiny_artifacts, **url(tiny, line))
    blocks = " ".join(m.value for m in at.markdown if m.proto.allow_html)
    page = case_study_html(case_study(tiny, line))
    for name in SECTIONS:
        _, background, accent = SECTION_STYLE[name]
        style = f"background:{background};border-left:4px solid {accent}"
        assert style in blocks and style in page, name


# ---- Generation page ------------------------------------------------------------------------
def test_generation_page_shows_precomputed_outputs_without_running_the_model(tiny, tiny_artifacts, monkeypatch):
    no_live_generation(monkeypatch)
    line = evaluated_line(tiny)
    record = tiny.precomputed(line)
    at = run_page(GENERATION, monkeypatch, tiny_artifacts, **url(tiny, line))
    assert not at.exception
    assert "Precomputed by train.py" in texts(at)
    blocks = method_blocks(at)
    assert list(blocks) == [*VARIANT_LABELS.values(), RERANK_LABEL, RSLLM, LLM4CDSR, "Dual-graph (stage 1)"]
    for variant, label in VARIANT_LABELS.items():
        stored = record["variants"][variant]
        shown = [m.value for m in blocks[label].markdown]
        assert shown[1:] == [output_line(tiny, r, o) for r, o in enumerate(stored["outputs"], 1)]
        assert all(f"`{o['text']}`" in m and "badge[" in m for o, m in zip(stored["outputs"], shown[1:]))
        rank = tiny.target_rank(stored["ranking"], line)
        assert shown[0] == (f"target at rank **{rank}**" if rank else f"target not in top-{len(stored['ranking'])}")
        assert blocks[label].dataframe[0].value["item"].tolist() == [tiny.item_label(i) for i in stored["ranking"][:10]]
    refined = blocks[VARIANT_LABELS["refined"]]
    assert ("fell back" in " ".join(c.value for c in refined.caption)) == record["variants"]["refined"]["fell_back"]
    dual = tiny.dual_graph_top(line)
    assert blocks["Dual-graph (stage 1)"].dataframe[0].value["item"].tolist() == [tiny.item_label(i) for i in dual[:10]]
    # the sibling methods: RSLLM's stored answers, LLM4CDSR's ranking, as their files hold them
    rsllm = json.loads((tiny_artifacts / "tiny" / "rsllm.json").read_text())["records"][str(line.index)]
    shown = [m.value for m in blocks[RSLLM].markdown]
    assert shown[1:] == [output_line(tiny, r, o) for r, o in enumerate(rsllm["outputs"], 1)]
    assert blocks[RSLLM].dataframe[0].value["item"].tolist() == [tiny.item_label(i) for i in rsllm["ranking"][:10]]
    llm4cdsr = read_tensors(tiny_artifacts / "tiny" / "llm4cdsr_rankings.safetensors")["test_top"][line.index]
    assert blocks[LLM4CDSR].dataframe[0].value["item"].tolist() == [tiny.item_label(int(i)) for i in llm4cdsr[:10]]
    # LLM4CDSR's hierarchical profile of this user (the run profiles its first evaluated lines)
    profile = json.loads((tiny_artifacts / "tiny" / "profiles.json").read_text())["test_lines"][str(line.index)]
    shown = [m.value for m in blocks[LLM4CDSR].markdown]
    assert shown[1] == f"**Profile:** {escape_markdown(profile['text'], None)}" and len(shown) == 2 + len(profile["clusters"])
    assert all(escape_markdown(c["summary"], None) in m for c, m in zip(profile["clusters"], shown[2:]))
    assert "user profile by the base LLM" in " ".join(c.value for c in blocks[LLM4CDSR].caption)


def test_generation_live_button_shows_what_the_live_model_generates(tiny, live, tiny_artifacts, tmp_path, monkeypatch):
    arts, _, line = with_unevaluated_line(tiny_artifacts, tmp_path)
    at = run_page(GENERATION, monkeypatch, arts, **url(tiny, line))
    assert not at.exception
    assert "did not evaluate this line" in at.info[0].value
    assert list(method_blocks(at)) == [LLM4CDSR, "Dual-graph (stage 1)"]  # RSLLM has no record of this line
    assert "no user profile for this line" in " ".join(c.value for c in method_blocks(at)[LLM4CDSR].caption)

    at.button(key="_gen_live").click().run()
    assert not at.exception
    assert "Generated live in" in texts(at)
    gen = tiny.config["llm"]["generation"]
    prompt = live.prompt(line, tiny.neighbours(line, run_k(tiny)))
    expected, _ = live.generate(line, prompt.text, gen["num_beams"], gen["max_new_tokens"])
    blocks = method_blocks(at)
    for variant, label in VARIANT_LABELS.items():
        g = expected[variant]
        shown = [m.value for m in blocks[label].markdown]
        assert shown[0] == rank_text(tiny, g.ranking, line)
        assert shown[1:] == [output_line(tiny, r, dataclasses.asdict(o)) for r, o in enumerate(g.outputs, 1)]
        assert blocks[label].dataframe[0].value["item"].tolist() == [tiny.item_label(i) for i in g.ranking[:10]]
    # the pipeline's list is the one the pipeline's own function makes of these generations
    from urllm.methods.urllm_stage2 import LineResult, pipeline_ranking

    weight = tiny.generations["fusion"]["weight"]
    assert expected["pipeline"].ranking == pipeline_ranking(LineResult(line.index, [], {}, {}, expected), tiny.rankings,
                                                            weight, live.generation_config.top_k)
    at.run()  # the live result stays on a rerun (from the cache, not a second button press)
    assert "Generated live in" in texts(at) and len(method_blocks(at)) == 7  # 4 variants, the pipeline, LLM4CDSR, dual graph


def test_generation_without_lora_uses_the_untuned_base_model_and_says_so(tiny_artifacts, tmp_path, monkeypatch):
    arts, run, line = with_unevaluated_line(tiny_artifacts, tmp_path)
    shutil.rmtree(arts / "tiny" / "lora")
    at = run_page(GENERATION, monkeypatch, arts, **url(run, line))
    assert not at.exception and "untuned base model" in at.warning[0].value
    at.button(key="_gen_live").click().run()
    assert not at.exception
    assert "untuned base model" in texts(at) and len(method_blocks(at)) == 7  # 5 live variants, LLM4CDSR, dual-graph


def test_a_prompt_too_long_for_the_model_is_a_message(tiny_artifacts, tmp_path, monkeypatch):
    from urllm.app.live import LiveModel

    def too_long(*args, **kwargs):
        raise PromptTooLong("prompt of 3000 tokens + 12 new tokens exceeds the model's context of 2048")

    monkeypatch.setattr(LiveModel, "generate", too_long)
    arts, run, line = with_unevaluated_line(tiny_artifacts, tmp_path)  # another folder: no cached result of an earlier test
    at = run_page(GENERATION, monkeypatch, arts, **url(run, line))
    at.button(key="_gen_live").click().run()
    assert not at.exception
    assert "does not fit the model" in at.error[0].value and "context of 2048" in at.error[0].value


@pytest.mark.parametrize("page", [PROMPT, GENERATION])
def test_a_corrupt_generations_file_is_named(page, tiny_artifacts, tmp_path, monkeypatch):
    arts = copy_run(tiny_artifacts, tmp_path)
    (arts / "tiny" / "generations.json").write_text("{half a file")
    at = run_page(page, monkeypatch, arts, run="tiny")
    assert not at.exception
    assert "generations.json" in at.error[0].value and "corrupt" in at.error[0].value


# ---- generation_view helpers -----------------------------------------------------------------
def test_flag_badges_and_output_lines():
    assert flag_badges({"valid": False, "in_domain": False, "duplicate": False}) == ":gray-badge[no item]"
    assert flag_badges({"valid": True, "in_domain": True, "duplicate": True}) == \
        ":green-badge[valid] :blue-badge[in-domain] :orange-badge[duplicate]"
    assert "other domain" in flag_badges({"valid": True, "in_domain": False, "duplicate": False})
    assert escape_markdown("[a] *b*_c\nd") == r"\[a\] \*b\*\_c d"


def test_output_line_ranking_rows_and_rank_text(tiny):
    line = tiny.test_lines[0]
    out = {"text": "say `hi`", "item": line.target, "valid": True, "in_domain": True, "duplicate": False}
    assert output_line(tiny, 2, out) == (f"2\\. `say 'hi'` → {escape_markdown(tiny.item_label(line.target))} "
                                         ":green-badge[valid] :blue-badge[in-domain]")
    unmatched = {**out, "text": "a\n\nb", "item": None, "valid": False}
    assert output_line(tiny, 1, unmatched).startswith("1\\. `a ⏎  ⏎ b` → no matching item")
    other = next(i for i in range(len(tiny.titles)) if i != line.target)
    rows = ranking_rows(tiny, [other, line.target], line)
    assert [r["target"] for r in rows] == ["", "◀ target"] and rows[1]["#"] == 2
    assert rank_text(tiny, [other, line.target], line) == "target at rank **2**"
    assert rank_text(tiny, [other], line) == "target not in top-1"
    assert len(ranking_rows(tiny, list(range(30)), line)) == 10


def test_plain_variants_and_method_columns(tiny):
    line = tiny.test_lines[0]
    gens = {"refined": Generation("refined", [Output("x", None, False, False, False)], [line.target, 3],
                                  fell_back=True),
            "free": Generation("free", [Output("y", 3, True, True, False)], np.array([3, line.target]))}
    plain = plain_variants(gens)
    assert plain["free"] == {
        "ranking": [3, line.target], "fell_back": False,
        "outputs": [{"text": "y", "item": 3, "valid": True, "in_domain": True, "duplicate": False}]}
    columns = method_columns(tiny, line, plain)
    rsllm = [RSLLM] if tiny.rsllm_record(line) is not None else []
    rerank = [RERANK_LABEL] if tiny.rerank_record(line) is not None else []
    assert [c.label for c in columns] == [VARIANT_LABELS["free"], VARIANT_LABELS["refined"], *rerank, *rsllm, LLM4CDSR,
                                          "Dual-graph (stage 1)"]
    assert columns[1].note == "fell back to the dual-graph ranking" and columns[0].note == ""
    assert columns[1].rank == "target at rank **1**" and columns[0].rank == "target at rank **2**"
    assert columns[-1].outputs == [] and len(columns[-1].ranking) == 10


def test_the_rerank_column_shows_the_fused_list_with_both_scores(tiny):
    line = next(ln for ln in tiny.test_lines if tiny.rerank_record(ln) is not None)
    record = tiny.rerank_record(line)
    column = next(c for c in method_columns(tiny, line, {}) if c.label == RERANK_LABEL)
    first = record["ranking"][0]
    at = record["candidates"].index(first)
    assert column.outputs[0].startswith("1\\. ") and f"dual-graph #{at + 1}" in column.outputs[0]
    assert f"LLM {record['llm'][at]:+.2f}" in column.outputs[0] and len(column.outputs) == min(5, len(record["ranking"]))
    assert [r["item"] for r in column.ranking] == [tiny.item_label(i) for i in record["ranking"][:10]]
    assert f"weight {float(tiny.rerank['weight']):g}" in column.note


def test_stored_record_takes_exactly_the_asked_k(tiny, tiny_artifacts, tmp_path):
    line = evaluated_line(tiny)
    assert tiny.precomputed(line, run_k(tiny)) == tiny.precomputed(line)
    assert tiny.precomputed(line, 5) is None  # no k=5 record: no other k instead
    _, run, missing = with_unevaluated_line(tiny_artifacts, tmp_path)
    assert run.precomputed(missing, run_k(run)) is None and tiny.precomputed(missing, run_k(tiny)) is not None


def test_prompt_helpers():
    a = {"instruction": "i", "neighbors": "", "history": "h", "question": "q"}
    assert prompt_differences(a, dict(a)) == [] and prompt_differences(a, {**a, "history": "h2", "neighbors": "n"}) == [
        "neighbors", "history"]
    assert section_label("neighbors", 7) == "**Neighbours** · 7 tokens"

    class Caps:
        max_history, max_neighbor_items = 10, 5

    tokens = {"instruction": 3, "neighbors": 4, "history": 5, "question": 2, "template": 6}
    prompt = Prompt(a, tokens, "text", kept={"history": 2, "neighbors": 3}, dropped={"history": 4, "neighbors": 9})
    uncapped = Prompt(a, tokens, "text", kept={"history": 6, "neighbors": 5}, dropped={"history": 0, "neighbors": 7})
    assert budget_summary(prompt, uncapped, Caps) == [
        "history: 2 of 6 kept; 4 dropped by the budget, 0 beyond max_history=10",
        "neighbours' items: 3 of 12 kept; 2 dropped by the budget, 7 beyond max_neighbor_items=5"]
    fig = token_bar(prompt, 30)
    assert sum(bar.x[0] for bar in fig.data) == prompt.n_tokens == 20


def test_the_generation_columns_follow_the_shared_variant_names():
    from urllm.schema import RECORD_VARIANTS

    assert tuple(VARIANT_LABELS) == RECORD_VARIANTS
