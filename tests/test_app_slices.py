"""The slices on the tiny run and the Slices page: each value's metrics are every method
rescored on exactly that value's lines, the values partition the test lines, the filters
pick the slices' rows; the page renders every dimension, takes the dimension and the value
from the URL (an unknown one warns and falls back), lists a value's lines with links, says
when a slice is empty, and shows a run's domain names as text."""
import json

import pytest
from app_fixtures import HOSTILE, copy_run, markdown_texts, run_page, texts, unescaped_markup

from urllm.app.reader import RunData
from urllm.app.slices import SLICES, column, filter_lines, slice_columns, slice_metrics, slice_rows, values
from urllm.stats import line_values

PAGE = "pages/8_Slices.py"


@pytest.fixture(scope="module")
def run(tiny_artifacts) -> RunData:
    return RunData.open("tiny", tiny_artifacts)


@pytest.fixture(scope="module")
def table(run):
    return slice_columns(run, run.line_table())


def test_the_values_of_every_dimension_partition_the_test_lines(run, table):
    n = len(run.test_lines)
    for dimension in SLICES:
        parts = slice_metrics(run, dimension, table)
        assert [p.value for p in parts] == values(run, dimension)
        lines = sorted(i for p in parts for i in p.lines)
        assert lines == list(range(n)), dimension  # each line in exactly one value
    assert sum(p.n > 0 for p in slice_metrics(run, "history", table)) >= 2  # the tiny run is really cut


def test_a_values_metrics_are_every_method_rescored_on_its_lines(run, table):
    by_hand = [ln.index for ln in run.test_lines if 6 <= len(ln.history) <= 10]  # the history bin "6-10"
    part = next(p for p in slice_metrics(run, "history", table) if p.value == "6-10")
    assert list(part.lines) == by_hand and part.table.n == len(by_hand)
    assert part.table.metrics == run.metric_tables(by_hand)[0].metrics
    for method, ranks in run.line_ranks.items():  # and those are the means over exactly these lines
        hr10 = line_values(ranks[by_hand])["HR@10"].mean()
        assert part.table.metrics[method]["overall"]["HR@10"] == pytest.approx(hr10, abs=1e-6)
        assert part.table.metrics[method]["overall"]["n"] == len(by_hand)
    for p in slice_metrics(run, "domain", table):  # the domain slice's overall is the whole run's per-domain scope
        assert p.table.metrics["dual_graph"]["overall"]["MRR"] == pytest.approx(
            run.metric_tables()[0].metrics["dual_graph"][p.value]["MRR"], abs=1e-6)


def test_the_filters_pick_the_slices_rows(run, table):
    lines = lambda t: t["line"].tolist()  # noqa: E731
    assert lines(filter_lines(table, cold=True)) == lines(slice_rows(table, "cold_start", "yes"))
    assert lines(filter_lines(table, ood=True)) == lines(slice_rows(table, "ood", "yes"))
    for d in run.domains:
        assert lines(filter_lines(table, domains=[d])) == lines(slice_rows(table, "domain", d))
    assert table[column("cold_start")].tolist() == ["yes" if run.cold_start(ln) else "no" for ln in run.test_lines]
    assert set(table[column("ood")]) <= {"yes", "no", "unknown"}
    assert (table[column("ood")] == "unknown").tolist() == (~table["evaluated"]).tolist()


# ---- the page ------------------------------------------------------------------------------
def _lines_frame(at):
    return next((df.value for df in at.dataframe if "open" in df.value.columns), None)


@pytest.mark.parametrize("dimension", list(SLICES))
def test_every_dimension_renders(dimension, tiny_artifacts, monkeypatch, table, run):
    at = run_page(PAGE, monkeypatch, tiny_artifacts, run="tiny", slice=dimension)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.selectbox(key="_url_slice").value == dimension
    assert f"by {SLICES[dimension].label}" in texts(at)
    assert len(at.get("plotly_chart")) == 1
    assert [t.label.split(" (")[0].replace("\\", "") for t in at.tabs] == values(run, dimension)  # a tab per value, n in its label
    value = at.selectbox(key="_url_value").value
    assert len(_lines_frame(at)) == len(slice_rows(table, dimension, value)) > 0  # the first non-empty value


def test_slice_and_value_from_the_url_open_that_values_lines(tiny_artifacts, monkeypatch, table):
    value = table[column("history")].value_counts().index[0]
    at = run_page(PAGE, monkeypatch, tiny_artifacts, run="tiny", slice="history", value=value, metric="MRR")
    assert not at.exception and all("Only" in w.value for w in at.warning)  # no fallback, only small-slice notes
    assert at.selectbox(key="_url_slice").value == "history" and at.selectbox(key="_url_value").value == value
    assert at.selectbox(key="_url_metric").value == "MRR"
    frame = _lines_frame(at)
    assert frame["line"].tolist() == slice_rows(table, "history", value)["line"].tolist()
    assert set(frame[column("history")]) == {value}
    assert all(link.startswith("Generation?run=tiny&user=") for link in frame["open"])
    assert at.query_params["slice"] in ("history", ["history"]) and at.query_params["value"] in (value, [value])
    assert "intervals are wide" in texts(at)  # tiny slices say so


def test_unknown_slice_or_value_in_the_url_warns_and_falls_back(tiny_artifacts, monkeypatch):
    at = run_page(PAGE, monkeypatch, tiny_artifacts, run="tiny", slice="nosuch")
    assert not at.exception
    assert any("nosuch" in w.value for w in at.warning)
    assert at.selectbox(key="_url_slice").value == "cold_start"
    at = run_page(PAGE, monkeypatch, tiny_artifacts, run="tiny", slice="history", value="nothing")
    assert not at.exception and any("nothing" in w.value for w in at.warning)
    assert at.selectbox(key="_url_value").value in SLICES["history"].values


def test_an_empty_slice_says_so_and_another_dimension_drops_the_value(tiny_artifacts, monkeypatch, table, run):
    empty = next(v for v in SLICES["history"].values if not (table[column("history")] == v).any())
    at = run_page(PAGE, monkeypatch, tiny_artifacts, run="tiny", slice="history", value=empty)
    assert not at.exception and _lines_frame(at) is None
    assert "no test line (an empty slice)" in texts(at)
    at.selectbox(key="_url_slice").set_value("domain").run()
    assert not at.exception and not any("from the link" in w.value for w in at.warning)
    assert at.query_params["slice"] in ("domain", ["domain"])
    assert at.selectbox(key="_url_value").value in run.domains  # the old value is not carried over
    assert at.query_params["value"] in (at.selectbox(key="_url_value").value, [at.selectbox(key="_url_value").value])


def test_run_values_show_as_text(tiny_artifacts, tmp_path, monkeypatch):
    arts = copy_run(tiny_artifacts, tmp_path / "arts")
    path = arts / "tiny" / "data.json"
    data = json.loads(path.read_text())
    data["domains"] = [f"{HOSTILE} {x}" for x in "ab"]
    path.write_text(json.dumps(data))
    at = run_page(PAGE, monkeypatch, arts, run="tiny", slice="domain", value=HOSTILE)
    assert not at.exception and not at.error, [e.value for e in at.error]
    shown = markdown_texts(at)
    assert any("evil" in t for t in shown)
    assert not {t: unescaped_markup(t) for t in shown if unescaped_markup(t)}
    spec = " ".join(chart.proto.spec for chart in at.get("plotly_chart"))
    assert "evil" in spec and "<a href" not in spec and "<img" not in spec


def test_a_run_without_per_line_ranks_lists_lines_without_metrics(tiny_artifacts, tmp_path, monkeypatch):
    arts = copy_run(tiny_artifacts, tmp_path / "arts")
    (arts / "tiny" / "line_ranks.json").unlink()
    at = run_page(PAGE, monkeypatch, arts, run="tiny", slice="cold_start")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "needs the per-line ranks" in texts(at) and not at.get("plotly_chart")
    assert _lines_frame(at) is not None
