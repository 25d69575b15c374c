"""The Overview and Evaluation pages and the case-study export: every method's metrics as
in the manifest with intervals and paired tests, all on one line set (a run with a method
scored on fewer lines, an older run without per-line ranks, a corrupt line_ranks.json),
training curves, an incomplete run, the per-user table with its filters and links, metrics
rescored on the filtered lines, the JSON/HTML export (escaped, self-contained) and a
corrupt generations.json."""
import base64
import html
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from app_fixtures import copy_run, run_page, texts
from streamlit.runtime.media_file_manager import MediaFileManager

from urllm.app.case_study import case_study, case_study_html
from urllm.app.reader import RunData, RunError
from urllm.stats import METRIC_NAMES, compare

OVERVIEW, EVALUATION = "pages/1_Overview.py", "pages/7_Evaluation.py"
ORDER = ["pop", "itemknn", "sasrec", "dual_graph", "dual_graph_no_graph", "dual_graph_readout_only", "llm4cdsr",
         "urllm_free", "urllm_constrained", "urllm_candidates", "urllm_refined", "urllm", "urllm_rerank", "rsllm"]
EVIL = '<script>alert("x")</script> & co'


def tiny(artifacts) -> RunData:
    return RunData.open("tiny", artifacts)


def plotly_figures(at) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def figure(at, title_part: str) -> dict:
    return next(f for f in plotly_figures(at) if title_part in str(f["layout"].get("title", {}).get("text", "")))


def traces(fig: dict) -> dict:
    """name -> trace, with plotly's base64-packed arrays ({"dtype", "bdata"}) unpacked to lists."""
    def unpack(value):
        if isinstance(value, dict) and "bdata" in value:
            return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).tolist()
        return value

    def unpack_all(value):
        return {k: unpack(v) for k, v in value.items()} if isinstance(value, dict) and "bdata" not in value else unpack(value)

    return {t["name"]: {k: unpack_all(v) for k, v in t.items()} for t in fig["data"]}


def missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def same(shown, stored) -> bool:
    """A table cell equals the manifest's value (both empty, or equal numbers)."""
    if missing(shown) or missing(stored):
        return missing(shown) and missing(stored)
    return shown == pytest.approx(stored)


def metric_tables(at) -> list:
    return [df.value for df in at.dataframe if "HR@10" in df.value.columns and df.value.index.name == "method"]


def line_frame(at):
    return next(df.value for df in at.dataframe if "open" in df.value.columns)


def interval(pair) -> str:
    return f"[{pair[0]:.4f}, {pair[1]:.4f}]"


def shown_ns(at) -> list[set]:
    """The n column of every metrics table: one set per table."""
    return [set(t["n"]) for t in metric_tables(at)]


def altered(tmp_path, tiny_artifacts, change) -> Path:
    """A copy of the tiny run with `change(folder, manifest)` applied to it (manifest saved after)."""
    arts = copy_run(tiny_artifacts, tmp_path)
    folder = arts / "tiny"
    manifest = json.loads((folder / "manifest.json").read_text())
    change(folder, manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return arts


def check_stats_row(table, method: str, values: dict, metric: str) -> None:
    """A shown row: the metric, its interval, and (not for dual_graph, the reference) the
    paired difference and p-value of `values` (a manifest-style scope)."""
    assert table.loc[method, metric] == pytest.approx(values[metric])
    assert table.loc[method, f"{metric} 95% CI"] == interval(values["ci95"][metric])
    delta, p = table.loc[method, f"Δ {metric} vs dual_graph"], table.loc[method, f"p ({metric})"]
    if method == "dual_graph":
        assert missing(delta) and missing(p)
    else:
        assert delta == pytest.approx(values["vs_dual_graph"][metric]["delta"])
        assert p == pytest.approx(values["vs_dual_graph"][metric]["p"]) and 0 < p <= 1


# ---- Overview ----------------------------------------------------------------------------
def test_overview_shows_every_method_of_the_manifest_with_intervals_on_the_same_lines(tiny_artifacts, monkeypatch):
    run = tiny(tiny_artifacts)
    at = run_page(OVERVIEW, monkeypatch, tiny_artifacts, run="tiny")
    assert not at.exception
    assert [m.value for m in at.metric][:2] == ["120", "40"]  # users, art items
    tables = metric_tables(at)
    assert len(tables) == 1 + len(run.domains)  # overall, then one tab per domain
    n_test = len(run.test_lines)
    for table, scope in zip(tables, ["overall", *run.domains]):
        assert list(table.index) == ORDER and set(ORDER) == set(run.metrics)
        for method in ORDER:
            want = run.metrics[method][scope]
            for metric in METRIC_NAMES:
                check_stats_row(table, method, want, metric)
            for column in ("ood_rate", "valid_rate", "dup_rate", "n"):
                if column in table.columns:
                    assert same(table.loc[method, column], want.get(column)), (scope, method, column)
        # every method on the same lines: one n per table, every test line overall
        assert set(table["n"]) == {run.metrics["pop"][scope]["n"]}
    assert set(tables[0]["n"]) == {n_test}
    assert "ood_rate" in tables[0].columns and "ood_rate" not in tables[1].columns  # the rates exist overall only
    assert f"Every method on the same {n_test} test lines" in texts(at) and "predates" not in texts(at)
    stages = next(df.value for df in at.dataframe if "stage" in df.value.columns)
    assert list(stages["stage"]) == [s["name"] for s in run.manifest["stages"]]


def test_overview_draws_the_training_curves_from_the_run(tiny_artifacts, monkeypatch):
    run = tiny(tiny_artifacts)
    at = run_page(OVERVIEW, monkeypatch, tiny_artifacts, run="tiny")
    assert not at.exception
    control = at.segmented_control(key="_url_curve")
    assert control.options == ["sasrec", "dual_graph", "dual_graph_no_graph", "llm4cdsr", "LoRA fine-tune"]
    titles = [f["layout"]["title"]["text"] for f in plotly_figures(at)]
    assert titles == ["sasrec: training loss", "sasrec: validation"]  # one model's two charts, the first by default
    assert set(traces(figure(at, "sasrec: training loss"))) == {"ce", "total"}

    at = run_page(OVERVIEW, monkeypatch, tiny_artifacts, run="tiny", curve="dual_graph")  # a link to one model
    curve = run.curve("dual_graph")
    loss = traces(figure(at, "dual_graph: training loss"))
    assert set(loss) == {"ce", "infomax", "align", "total"}
    assert loss["infomax"]["y"] == pytest.approx([e["infomax"] for e in curve])
    valid = traces(figure(at, "dual_graph: validation"))
    assert valid["valid_MRR"]["y"] == pytest.approx([e["valid_MRR"] for e in curve])

    at.segmented_control(key="_url_curve").set_value("llm4cdsr").run()  # a click changes the charts and the URL
    assert at.query_params["curve"] == "llm4cdsr"
    llm4cdsr = traces(figure(at, "llm4cdsr: training loss"))  # its adapter term and the profile guidance too
    assert set(llm4cdsr) == {"ce", "contrastive", "profile", "total"}
    assert llm4cdsr["profile"]["y"] == pytest.approx([e["profile"] for e in run.curve("llm4cdsr")])
    assert len(plotly_figures(at)) == 2

    at = run_page(OVERVIEW, monkeypatch, tiny_artifacts, run="tiny", curve="LoRA fine-tune")
    lora = traces(figure(at, "LoRA"))["loss"]
    assert lora["y"] == pytest.approx([s["loss"] for s in run.lora_report()["curve"]])
    assert len(plotly_figures(at)) == 1


def test_overview_of_a_run_older_than_a_stage_says_so(tmp_path, tiny_artifacts, monkeypatch):
    arts = copy_run(tiny_artifacts, tmp_path)
    manifest = json.loads((arts / "tiny" / "manifest.json").read_text())
    manifest["stages"] = [s for s in manifest["stages"] if s["name"] not in ("itemknn", "dual_graph_readout_only")]
    (arts / "tiny" / "manifest.json").write_text(json.dumps(manifest))
    at = run_page(OVERVIEW, monkeypatch, arts, run="tiny")
    assert not at.exception and not at.warning
    assert "made before the stages itemknn, dual_graph_readout_only existed" in " ".join(i.value for i in at.info)


def test_overview_of_an_incomplete_run_names_the_missing_stages(tmp_path, tiny_artifacts, monkeypatch):
    arts = copy_run(tiny_artifacts, tmp_path)
    folder = arts / "tiny"
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["complete"] = False
    manifest["stages"] = manifest["stages"][:9]  # data ... dual_graph_readout_only, profiles, llm4cdsr
    manifest["metrics"] = {m: v for m, v in manifest["metrics"].items() if not m.startswith("urllm") and m != "rsllm"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(folder / "lora")
    (folder / "generations.json").unlink()

    at = run_page(OVERVIEW, monkeypatch, arts, run="tiny")
    assert not at.exception
    warned = " ".join(w.value for w in at.warning)
    assert "incomplete" in warned and "retrieval, lora, generation, rerank, rsllm, evaluation, projections" in warned
    assert list(metric_tables(at)[0].index) == ORDER[:7]
    assert "No LoRA curve" in texts(at)
    assert traces(figure(at, "sasrec: training loss")) and "LoRA fine-tune" not in at.segmented_control(key="_url_curve").options

    at = run_page(EVALUATION, monkeypatch, arts, run="tiny")
    assert not at.exception
    assert "no LLM variant metrics" in texts(at)
    assert len(line_frame(at)) == len(tiny(arts).test_lines)
    assert "no retrieval stage" in json.dumps(case_study(tiny(arts), tiny(arts).test_lines[0]))


# ---- Evaluation ----------------------------------------------------------------------------
def test_evaluation_charts_hold_the_run_metrics_with_error_bars(tiny_artifacts, monkeypatch):
    run = tiny(tiny_artifacts)
    at = run_page(EVALUATION, monkeypatch, tiny_artifacts, run="tiny")
    assert not at.exception
    assert at.selectbox(key="_ev_metric").value == "HR@10"
    bars = traces(plotly_figures(at)[0])
    assert set(bars) == {"overall", *run.domains}
    assert bars["overall"]["x"] == ORDER
    assert bars["office"]["y"] == pytest.approx([run.metrics[m]["office"]["HR@10"] for m in ORDER])
    for scope, trace in bars.items():  # error bars: the 95% interval's ends
        ci = [run.metrics[m][scope]["ci95"]["HR@10"] for m in ORDER]
        values = [run.metrics[m][scope]["HR@10"] for m in ORDER]
        assert trace["error_y"]["array"] == pytest.approx([hi - v for (_, hi), v in zip(ci, values)])
        assert trace["error_y"]["arrayminus"] == pytest.approx([v - lo for (lo, _), v in zip(ci, values)])
    rates = traces(plotly_figures(at)[1])
    assert rates["ood_rate"]["y"] == pytest.approx([run.metrics[m]["overall"]["ood_rate"] for m in ORDER[7:]])

    at.selectbox(key="_ev_metric").select("MRR").run()
    assert not at.exception
    assert traces(plotly_figures(at)[0])["overall"]["y"] == pytest.approx([run.metrics[m]["overall"]["MRR"] for m in ORDER])


def test_evaluation_tables_give_every_method_an_interval_and_a_paired_test_on_the_same_lines(tiny_artifacts, monkeypatch):
    run = tiny(tiny_artifacts)
    at = run_page(EVALUATION, monkeypatch, tiny_artifacts, run="tiny")
    tables = metric_tables(at)
    assert len(tables) == 1 + len(run.domains)
    for table, scope in zip(tables, ["overall", *run.domains]):
        assert list(table.index) == ORDER
        for method in ORDER:
            check_stats_row(table, method, run.metrics[method][scope], "HR@10")
        assert table.loc["pop", "Δ HR@10 vs dual_graph 95% CI"] == interval(run.metrics["pop"][scope]["vs_dual_graph"]["HR@10"]["ci95"])
    assert shown_ns(at) == [{len(run.test_lines)}] + [{sum(ln.domain == d for ln in run.test_lines)} for d in range(2)]
    assert f"Every method on the same {len(run.test_lines)} test lines" in texts(at)


def test_a_method_scored_on_fewer_lines_puts_every_method_on_the_common_lines(tmp_path, tiny_artifacts, monkeypatch):
    keep = 20

    def drop_lines(folder, manifest):  # urllm_constrained not scored past line 20; the manifest left as it was
        table = json.loads((folder / "line_ranks.json").read_text())
        table["methods"]["urllm_constrained"][keep:] = [None] * (len(table["lines"]) - keep)
        (folder / "line_ranks.json").write_text(json.dumps(table))

    arts = altered(tmp_path, tiny_artifacts, drop_lines)
    run = tiny(arts)
    assert np.isnan(run.line_ranks["urllm_constrained"][keep:]).all()
    common = {m: r[:keep] for m, r in run.line_ranks.items()}
    domains = np.array([ln.domain for ln in run.test_lines[:keep]])
    want = compare(common, domains, run.domains, run.seed)  # urllm.stats on the 20 common lines
    for page in (OVERVIEW, EVALUATION):
        at = run_page(page, monkeypatch, arts, run="tiny")
        assert not at.exception
        tables = metric_tables(at)
        assert shown_ns(at)[0] == {keep} and all(len(ns) == 1 for ns in shown_ns(at))
        for method in ORDER:
            check_stats_row(tables[0], method, want[method]["overall"], "HR@10")
        assert f"Every method on the same {keep} test lines" in texts(at) and f"of the run's {len(run.test_lines)}" in texts(at)
    # the per-user table shows every method's full rank, none where a method was not scored
    frame = line_frame(at)
    for method in ORDER:
        ranks = [None if np.isnan(r) else int(r) for r in run.line_ranks[method]]
        assert [None if missing(r) else int(r) for r in frame[f"{method}_rank"]] == ranks


def test_an_older_run_never_sets_different_line_counts_side_by_side(tmp_path, tiny_artifacts, monkeypatch):
    sample = 5

    def make_old(folder, manifest):  # as train.py wrote runs before per-line ranks
        (folder / "line_ranks.json").unlink()
        (folder / "evaluation.json").unlink()
        for method, values in manifest["metrics"].items():
            values.pop("lines", None)
            for scope in ["overall", "art", "office"]:
                values[scope].pop("ci95"), values[scope].pop("vs_dual_graph")
            if method.startswith("urllm") or method == "rsllm":
                values["overall"]["n"] = sample

    arts = altered(tmp_path, tiny_artifacts, make_old)
    run = tiny(arts)
    assert run.line_ranks is None
    for page in (OVERVIEW, EVALUATION):
        at = run_page(page, monkeypatch, arts, run="tiny")
        assert not at.exception
        assert "predates per-line ranks" in texts(at) and "Rerunning the same train.py command" in texts(at)
        assert {frozenset(t.index) for t in metric_tables(at)} == {frozenset(ORDER[:7]), frozenset(ORDER[7:])}
        assert all(len(ns) == 1 for ns in shown_ns(at))  # never two n's in one table
        assert not any("HR@10 95% CI" in t.columns for t in metric_tables(at))  # no intervals to show
    figures = plotly_figures(at)
    assert len(figures) == 3  # a bar chart per line count, then the answer rates
    assert [set(traces(f)["overall"]["x"]) for f in figures[:2]] == [set(ORDER[:7]), set(ORDER[7:])]
    # a subset of lines cannot be rescored without per-line ranks: said, not guessed
    at.multiselect(key="_ev_domains").set_value(["office"]).run()
    assert not at.exception and "needs the per-line ranks" in texts(at)


def test_evaluation_rescores_every_method_on_the_filtered_lines(tiny_artifacts, monkeypatch):
    run = tiny(tiny_artifacts)
    at = run_page(EVALUATION, monkeypatch, tiny_artifacts, run="tiny")
    assert "on the lines shown" not in texts(at)  # every line shown: the tables above hold them
    at.multiselect(key="_ev_domains").set_value(["office"]).run()
    assert not at.exception
    office = sum(ln.domain == 1 for ln in run.test_lines)
    subset = metric_tables(at)[-1]
    assert set(subset["n"]) == {office}
    for method in ORDER:  # the office lines' overall is the run's office scope (same lines, same seed)
        check_stats_row(subset, method, run.metrics[method]["office"], "HR@10")
    assert f"Every method on the same {office} test lines: the {office} lines the filters select" in texts(at)


def test_a_corrupt_line_ranks_file_is_named(tmp_path, tiny_artifacts, monkeypatch):
    arts = copy_run(tiny_artifacts, tmp_path)
    path = arts / "tiny" / "line_ranks.json"
    path.write_text('{"methods": ')
    for page in (EVALUATION, OVERVIEW):
        at = run_page(page, monkeypatch, arts, run="tiny")
        assert not at.exception
        assert "line_ranks.json" in at.error[0].value and "corrupt" in at.error[0].value
    for bad, why in [({"methods": {"pop": [1, 2]}}, "2 ranks for the run's 47 test lines"),
                     ({"methods": {"pop": "123"}}, "methods.pop expected a list of numbers and nulls, got a string"),
                     ({"lines": []}, "no 'methods'"),
                     ({"methods": {"pop": [0] * 47}}, "below 1")]:
        path.write_text(json.dumps(bad))
        with pytest.raises(RunError, match="line_ranks.json") as err:
            tiny(arts).line_ranks
        assert why in str(err.value)


def test_evaluation_compares_the_retrieval_ks(tiny_artifacts, monkeypatch):
    gens = tiny(tiny_artifacts).generations
    assert gens["ks"] == [0, 1]
    at = run_page(EVALUATION, monkeypatch, tiny_artifacts, run="tiny")
    table = next(df.value for df in at.dataframe if "HR@10 (k=0)" in df.value.columns)
    for k in ("0", "1"):
        for method in ("dual_graph", "urllm_free", "urllm_refined"):
            assert table.loc[method, f"HR@10 (k={k})"] == pytest.approx(gens["metrics"][k][method]["overall"]["HR@10"])
        free = gens["metrics"][k]["urllm_free"]["overall"]
        assert table.loc["urllm_free", f"ood_rate (k={k})"] == pytest.approx(free["ood_rate"])
    assert "Effect of k" in texts(at)


def test_per_user_table_has_one_row_per_test_line_and_links_to_the_generation_page(tiny_artifacts, monkeypatch):
    run = tiny(tiny_artifacts)
    at = run_page(EVALUATION, monkeypatch, tiny_artifacts, run="tiny")
    frame = line_frame(at)
    assert list(frame["line"]) == [ln.index for ln in run.test_lines]
    assert list(frame["open"]) == [f"Generation?run=tiny&user={run.user_ids[ln.user]}&domain={run.domains[ln.domain]}"
                                   for ln in run.test_lines]
    table = next(df for df in at.dataframe if "open" in df.value.columns)
    assert json.loads(table.proto.columns)["open"]["type_config"]["type"] == "link"


def test_filters_change_the_rows(tiny_artifacts, monkeypatch):
    run = tiny(tiny_artifacts)
    ranks = [run.target_rank(run.dual_graph_top(ln), ln) for ln in run.test_lines]
    at = run_page(EVALUATION, monkeypatch, tiny_artifacts, run="tiny")
    at.checkbox(key="_ev_evaluated").check().run()
    assert sorted(line_frame(at)["line"]) == sorted(run.generations["lines"])
    at.checkbox(key="_ev_evaluated").uncheck().run()
    at.radio(key="_ev_hit").set_value("miss").run()
    assert len(line_frame(at)) == sum(r is None or r > 10 for r in ranks) < len(run.test_lines)
    at.radio(key="_ev_hit").set_value("all").run()
    at.multiselect(key="_ev_domains").set_value(["office"]).run()
    assert len(line_frame(at)) == sum(ln.domain == 1 for ln in run.test_lines)
    at.checkbox(key="_ev_cold").check().run()
    assert len(line_frame(at)) == sum(ln.domain == 1 and run.cold_start(ln) for ln in run.test_lines)
    assert "of 47 test lines" in texts(at)
    assert not at.exception


def test_export_buttons_give_the_selected_users_case_study(tiny_artifacts, monkeypatch):
    run = tiny(tiny_artifacts)
    evaluated = run.test_lines[run.generations["lines"][0]]
    user, domain = run.user_ids[evaluated.user], run.domains[evaluated.domain]
    files = {}
    add, add_deferred = MediaFileManager.add, MediaFileManager.add_deferred

    def record(self, data, mimetype, coordinates, file_name=None, *args, **kwargs):
        files[file_name] = data
        return add(self, data, mimetype, coordinates, file_name, *args, **kwargs)

    def record_deferred(self, make, mimetype, coordinates, file_name=None, **kwargs):
        files[file_name] = make
        return add_deferred(self, make, mimetype, coordinates, file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add", record)
    monkeypatch.setattr(MediaFileManager, "add_deferred", record_deferred)
    at = run_page(EVALUATION, monkeypatch, tiny_artifacts, run="tiny", user=user, domain=domain)
    assert not at.exception
    assert [b.label for b in at.get("download_button")] == ["Case study (JSON)", "Case study (HTML, opens offline)"]
    stem = f"case_tiny_{user}_{domain}"
    study = json.loads(files[f"{stem}.json"])
    assert (study["user"], study["target_domain"], study["line"]) == (user, domain, evaluated.index)
    page = files[f"{stem}.html"]()  # built on click
    assert f"user {user}" in page and html.escape(run.titles[evaluated.target]) in page
    assert 'class="plotly-graph-div"' in page  # the sequence graph


def test_evaluation_names_a_corrupt_generations_file(tmp_path, tiny_artifacts, monkeypatch):
    arts = copy_run(tiny_artifacts, tmp_path)
    (arts / "tiny" / "generations.json").write_text('{"records": ')
    for page in (EVALUATION, OVERVIEW):
        at = run_page(page, monkeypatch, arts, run="tiny")
        assert not at.exception
        assert "generations.json" in at.error[0].value and "corrupt" in at.error[0].value


# ---- case study ------------------------------------------------------------------------------
def test_case_study_of_an_evaluated_line(tiny_artifacts):
    run = tiny(tiny_artifacts)
    gens = run.generations
    line = run.test_lines[gens["lines"][0]]
    study = case_study(run, line)
    assert json.loads(json.dumps(study)) == study
    assert study["user"] == run.user_ids[line.user] and study["target_domain"] == run.domains[line.domain]
    assert study["target"] == {"id": line.target, "title": run.titles[line.target], "domain": run.domains[line.domain]}
    assert [it["id"] for it in study["history"]] == list(line.history)
    assert study["history"][0]["title"] == run.titles[line.history[0]]
    assert [it["id"] for it in study["dual_graph"]["top"]] == run.dual_graph_top(line, 10)
    assert study["dual_graph"]["target_rank"] == run.target_rank(run.dual_graph_top(line), line)
    assert study["k"] == gens["k"] == 1
    assert [n["user"] for n in study["neighbours"]] == [run.user_ids[u] for u, _ in run.neighbours(line, 1)]
    neighbour = run.neighbours(line, 1)[0][0]
    assert study["neighbours"][0]["recent_items"][-1]["id"] == run.user_items(neighbour)[-1]
    record = gens["records"][str(line.index)]["1"]
    assert study["prompt"]["sections"] == record["prompt"] and study["prompt"]["tokens"] == record["tokens"]
    assert list(study["outputs"]) == ["free", "constrained", "candidates", "refined", "pipeline"]
    free = study["outputs"]["free"]
    assert [o["text"] for o in free["outputs"]] == [o["text"] for o in record["variants"]["free"]["outputs"]]
    assert free["target_rank"] == run.target_rank(record["variants"]["free"]["ranking"], line)
    assert study["metrics"] == run.metrics and study["notes"] == []
    # the sibling methods as the run stores them, LLM4CDSR with this user's profile
    rsllm = run.rsllm_record(line)
    assert [o["text"] for o in study["siblings"]["rsllm"]["outputs"]] == [o["text"] for o in rsllm["outputs"]]
    assert study["siblings"]["rsllm"]["target_rank"] == run.target_rank(rsllm["ranking"], line)
    assert [it["id"] for it in study["siblings"]["llm4cdsr"]["top"]] == run.llm4cdsr_top(line, 10)
    assert study["siblings"]["llm4cdsr"]["profile"]["text"] == run.profile(line)["text"]
    # the re-ranker: the fused list with each item's dual-graph place and both scores
    rerank = run.rerank_record(line)
    assert [it["id"] for it in study["rerank"]["ranking"]] == rerank["ranking"]
    first = study["rerank"]["ranking"][0]
    at = rerank["candidates"].index(first["id"])
    assert first["dual_graph_rank"] == at + 1 and first["llm_score"] == rerank["llm"][at]
    assert study["rerank"]["target_rank"] == run.target_rank(rerank["ranking"], line)
    page = case_study_html(study)
    assert "<h2>URLLM re-ranker</h2>" in page and f"weight {study['rerank']['weight']:g}" in page
    assert "<h2>Sibling methods</h2>" in page and "RSLLM" in page
    assert f"<h2>Run metrics (every test line, n = {len(run.test_lines)})</h2>" in page  # one table: one line set
    assert "HR@10 95% CI" in page and html.escape(interval(run.metrics["pop"]["overall"]["ci95"]["HR@10"])) in page
    assert html.escape(run.profile(line)["text"]) in page

    without = case_study(run, line, k=0)
    assert without["neighbours"] == [] and without["prompt"]["sections"] == gens["records"][str(line.index)]["0"]["prompt"]


def test_case_study_of_a_line_without_generations_says_so(tmp_path, tiny_artifacts):
    arts = copy_run(tiny_artifacts, tmp_path)  # every test line is generated for: drop one line's record
    gens = json.loads((arts / "tiny" / "generations.json").read_text())
    gens["lines"].remove(3)
    del gens["records"]["3"]
    (arts / "tiny" / "generations.json").write_text(json.dumps(gens))
    run = tiny(arts)
    line = run.test_lines[3]
    study = case_study(run, line)
    assert study["prompt"] is None and study["outputs"] is None
    assert "No precomputed prompt" in study["notes"][0]
    page = case_study_html(study)
    assert "No precomputed prompt" in page and "<h2>Prompt" not in page


def test_case_study_html_escapes_titles_and_prompts_and_needs_no_network(tmp_path, tiny_artifacts):
    arts = copy_run(tiny_artifacts, tmp_path)
    run = tiny(arts)
    line = run.test_lines[run.generations["lines"][0]]
    data = json.loads((arts / "tiny" / "data.json").read_text())
    data["items"]["title"][line.target] = "target " + EVIL
    data["items"]["title"][line.history[-1]] = "history " + EVIL
    (arts / "tiny" / "data.json").write_text(json.dumps(data))
    gens = json.loads((arts / "tiny" / "generations.json").read_text())
    gens["records"][str(line.index)]["1"]["prompt"]["instruction"] = "instruction " + EVIL
    (arts / "tiny" / "generations.json").write_text(json.dumps(gens))

    run = tiny(arts)
    study = case_study(run, line)
    assert study["target"]["title"] == "target " + EVIL
    from urllm.app.figures import sequence_graph

    for fig in (None, sequence_graph(run, line)):
        page = case_study_html(study, fig)
        assert study["user"] in page
        for text in ("target " + EVIL, "history " + EVIL, "instruction " + EVIL):
            assert html.escape(text) in page
        assert "<script>alert" not in page
        for section in study["prompt"]["sections"].values():
            assert html.escape(section) in page
        assert not re.search(r"<script[^>]*\bsrc\s*=|<link\b|<img\b|<iframe\b", page, re.I)
        outside_scripts = re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S)
        assert "http://" not in outside_scripts and "https://" not in outside_scripts
    plain = case_study_html(study)
    assert "<script" not in plain and "http://" not in plain and "https://" not in plain
