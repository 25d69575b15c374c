"""Two runs line by line (urllm/app/compare.py and the Compare page): lines matched by what
they are, paired differences on the lines both runs scored, rank changes, and clear
refusals (another dataset, an older run, one run against itself)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from app_fixtures import copy_run, run_page, texts

from urllm.app.compare import CompareError, comparison_export, config_diff, line_changes, method_deltas, pair_runs
from urllm.app.reader import RunData
from urllm.stats import line_values


def _rewrite(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def two_runs(tiny_artifacts, tmp_path_factory):
    """tiny, and tiny-b: a copy whose `urllm` ranks the target first on every third line and
    tenth-worse on every seventh, whose config says llm.k=0."""
    arts = copy_run(tiny_artifacts, tmp_path_factory.mktemp("cmp"))
    shutil.copytree(arts / "tiny", arts / "tiny-b")

    def better(data):
        ranks = data["methods"]["urllm"]
        for i in range(len(ranks)):
            if i % 3 == 0:
                ranks[i] = 1
            elif i % 7 == 0:
                ranks[i] = ranks[i] + 10
    _rewrite(arts / "tiny-b" / "line_ranks.json", better)
    _rewrite(arts / "tiny-b" / "manifest.json", lambda m: m["config"]["llm"].__setitem__("k", 0))
    return arts


def test_a_run_against_an_identical_copy_differs_nowhere(two_runs, tmp_path):
    arts = copy_run(two_runs, tmp_path, "tiny")
    (arts / "tiny").rename(arts / "same")
    pair = pair_runs(RunData.open("tiny", two_runs), RunData.open("same", arts))
    assert pair.n == len(pair.a.test_lines)
    for row in method_deltas(pair, "MRR"):
        assert row["delta"] == 0 and row["p"] == 1 and row["improved"] == row["hurt"] == 0, row
    assert config_diff(pair) == []


def test_paired_differences_and_changes_are_the_hand_computed_ones(two_runs):
    a, b = RunData.open("tiny", two_runs), RunData.open("tiny-b", two_runs)
    pair = pair_runs(a, b)
    ra, rb = a.line_ranks["urllm"], b.line_ranks["urllm"]
    rows = {r["method"]: r for r in method_deltas(pair, "HR@1")}
    row = rows["urllm"]
    want = (line_values(rb)["HR@1"] - line_values(ra)["HR@1"]).mean()
    assert row["delta"] == pytest.approx(want) and row["delta"] > 0.2
    assert row["p"] < 0.05 and row["delta_ci95"][0] > 0
    assert row["a_ci95"][0] <= row["a"] <= row["a_ci95"][1]
    assert row["improved"] == int((rb < ra).sum()) and row["hurt"] == int((rb > ra).sum())
    assert rows["dual_graph"]["delta"] == 0 and rows["dual_graph"]["p"] == 1  # untouched methods
    table = line_changes(pair, "urllm")
    assert len(table) == pair.n
    assert (table["change"] == "improved").sum() == row["improved"]
    assert (table["rank_change"] == table["rank_b"] - table["rank_a"]).all()
    assert {"setting": "llm.k", "a": a.config["llm"]["k"], "b": 0} in config_diff(pair)


def test_lines_are_matched_by_what_they_are_not_by_their_row(two_runs, tmp_path):
    arts = copy_run(two_runs, tmp_path, "tiny")
    (arts / "tiny").rename(arts / "shuffled")
    n = len(RunData.open("tiny", two_runs).test_lines)
    order = np.random.default_rng(0).permutation(n)
    order = order[: n - 5]  # and five lines fewer
    _rewrite(arts / "shuffled" / "data.json",
             lambda d: d["lines"].__setitem__("test", [d["lines"]["test"][i] for i in order]))
    _rewrite(arts / "shuffled" / "line_ranks.json", lambda d: d.__setitem__(
        "methods", {m: [r[i] for i in order] for m, r in d["methods"].items()}))
    pair = pair_runs(RunData.open("tiny", two_runs), RunData.open("shuffled", arts))
    assert pair.n == n - 5
    assert all(r["delta"] == 0 and r["n"] == n - 5 for r in method_deltas(pair, "MRR"))
    assert np.array_equal(order[pair.rows_b], pair.rows_a)


def test_refusals_name_the_reason(two_runs, tmp_path):
    a = RunData.open("tiny", two_runs)
    with pytest.raises(CompareError, match="pick a second run"):
        pair_runs(a, RunData.open("tiny", two_runs))
    arts = copy_run(two_runs, tmp_path / "other", "tiny")
    _rewrite(arts / "tiny" / "data.json", lambda d: d["items"]["title"].__setitem__(0, "another catalogue"))
    with pytest.raises(CompareError, match="catalogues differ"):
        pair_runs(a, RunData.open("tiny", arts))
    old = copy_run(two_runs, tmp_path / "old", "tiny")
    (old / "tiny" / "line_ranks.json").unlink()
    with pytest.raises(CompareError, match="predates per-line ranks"):
        pair_runs(a, RunData.open("tiny", old))


def test_the_export_holds_both_runs_every_metric_and_the_lines(two_runs):
    pair = pair_runs(RunData.open("tiny", two_runs), RunData.open("tiny-b", two_runs))
    export = comparison_export(pair, "urllm")
    json.dumps(export)
    assert export["runs"] == {"a": "tiny", "b": "tiny-b"} and export["common_lines"] == pair.n
    assert len(export["metrics"]) == 8 and len(export["lines"]) == pair.n
    assert any(d["setting"] == "llm.k" for d in export["config_differences"])


# ---- the page ----------------------------------------------------------------------------------
def test_compare_page_from_the_url_shows_intervals_changes_and_links(two_runs, monkeypatch):
    at = run_page("pages/9_Compare.py", monkeypatch, two_runs, run="tiny", compare="tiny-b", method="urllm",
                  change="improved")
    assert not at.exception and not at.error
    assert at.selectbox(key="_url_compare").value == "tiny-b"
    table = at.dataframe[1].value  # the settings table is first, then the methods
    assert "urllm" in table.index and "Δ 95% CI" in table.columns
    assert table.loc["urllm", "Δ b − a"] > 0
    lines = at.dataframe[2].value
    assert len(lines) and set(lines["change"]) == {"improved"}
    assert lines["open_b"].str.startswith("Generation?run=tiny-b&").all()
    assert at.query_params["compare"] in ("tiny-b", ["tiny-b"])
    assert "common test lines" in texts(at)


def test_compare_page_refuses_another_dataset_and_a_bad_link(two_runs, tmp_path, monkeypatch):
    arts = copy_run(two_runs, tmp_path, "tiny")
    copy_run(two_runs, arts, "tiny-b")
    _rewrite(arts / "tiny-b" / "data.json", lambda d: d["items"]["title"].__setitem__(0, "another catalogue"))
    at = run_page("pages/9_Compare.py", monkeypatch, arts, run="tiny", compare="tiny-b")
    assert not at.exception
    assert "catalogues differ" in at.error[0].value
    at = run_page("pages/9_Compare.py", monkeypatch, two_runs, run="tiny", compare="nosuch")
    assert not at.exception and "nosuch" in at.warning[0].value


def test_compare_page_with_one_run_says_how_to_make_a_second(tiny_artifacts, monkeypatch):
    at = run_page("pages/9_Compare.py", monkeypatch, tiny_artifacts, run="tiny")
    assert not at.exception
    assert "llm.k=0" in at.info[0].value
