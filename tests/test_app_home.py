"""The Home page (pages/0_Home.py behind the app.py router): every method's headline metric
against the dual-graph model, and the notable lines it links to."""
from __future__ import annotations

import pandas as pd
from app_fixtures import run_page, texts

from urllm.app.highlights import headline, notable_lines


def _table():
    return pd.DataFrame({
        "line": [0, 1, 2, 3], "user": ["u0", "u1", "u2", "u3"], "domain": ["a", "b", "a", "b"],
        "target": ["t0", "t1", "t2", "t3"], "cold_start": [False, True, False, True],
        "dual_graph_rank": [5, 10, 3, 1], "urllm_rank": [5, 2, 9, 1], "rsllm_rank": [6, 10, 4, 2],
        "free_ood": [0, 0, 3, 1], "refined_ood": [0, 0, 1, 0]})


def test_notable_lines_pick_the_largest_gain_and_loss_the_most_ood_answers_and_a_cold_start_hit():
    picks = {p["kind"]: p for p in notable_lines(_table())}
    assert picks["LLM helped most"]["line"] == 1 and picks["LLM helped most"]["method"] == "urllm"
    assert "ranks the target 2" in picks["LLM helped most"]["why"]
    assert picks["LLM hurt most"]["line"] == 2
    assert picks["LLM left the domain"]["line"] == 2 and picks["LLM left the domain"]["why"].startswith("4 ")
    assert picks["Cold-start user"]["line"] == 3 and picks["Cold-start user"]["page"] == "Sequence_graph"


def test_no_gain_no_ood_gives_no_such_pick():
    table = _table().assign(urllm_rank=[5, 10, 3, 1], rsllm_rank=[9, 11, 4, 2], free_ood=0, refined_ood=0)
    kinds = [p["kind"] for p in notable_lines(table)]
    assert "LLM helped most" not in kinds and "LLM left the domain" not in kinds and "LLM hurt most" in kinds
    assert notable_lines(None) == [] and notable_lines(pd.DataFrame()) == []


def test_headline_verdicts_follow_the_paired_test():
    def scope(value, delta=None, p=None):
        out = {"MRR": value, "n": 100, "ci95": {"MRR": [value - .01, value + .01]}}
        return out | ({"vs_dual_graph": {"MRR": {"delta": delta, "p": p}}} if p is not None else {})
    metrics = {"dual_graph": {"overall": scope(.05, 0, 1)}, "itemknn": {"overall": scope(.07, .02, .001)},
               "pop": {"overall": scope(.01, -.04, .001)}, "urllm": {"overall": scope(.051, .001, .4)}}
    rows = {r["method"]: r for r in headline(metrics, "MRR")}
    assert rows["dual_graph"]["verdict"] == "reference" and rows["dual_graph"]["delta"] is None
    assert (rows["itemknn"]["verdict"], rows["pop"]["verdict"], rows["urllm"]["verdict"]) == ("above", "below", "tie")


def test_home_shows_the_headline_and_links_notable_lines(tiny_artifacts, monkeypatch):
    at = run_page("app.py", monkeypatch, tiny_artifacts, run="tiny", metric="HR@10")
    assert not at.exception and not at.error
    assert at.segmented_control(key="_url_metric").value == "HR@10"
    assert "Does the LLM help?" in [h.value for h in at.header]
    assert "Every method on the same" in texts(at)
    picks = at.dataframe[0].value
    assert len(picks) >= 2
    assert picks["open"].str.match(r"^(Generation|Sequence_graph)\?run=tiny&user=").all()


def test_the_menu_is_home_first_then_every_page_in_order():
    from pathlib import Path

    source = (Path(__file__).resolve().parents[1] / "app.py").read_text()
    assert "st.navigation(" in source
    namespace: dict = {"__file__": str(Path(__file__).resolve().parents[1] / "app.py")}
    # page_files() only: running the whole router needs Streamlit's runtime
    exec(compile(source.split("st.set_page_config")[0], "app.py", "exec"), namespace)
    found = namespace["page_files"]()
    assert found[0][:2] == (0, "Home")
    assert {"Compare", "Generation", "Evaluation", "Embeddings"} <= {name for _, name, _ in found}
    assert [n for n, _, _ in found] == sorted(n for n, _, _ in found)
