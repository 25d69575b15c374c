"""The Embeddings page (pages/6_Embeddings.py, urllm/app/embedding_view.py) on the tiny run:
every space from the URL, the marks of the selected line, search, colourings, the
precomputed neighbour table against brute force, an older run's projections file."""
import base64
import json
import re

import numpy as np
import pytest
from app_fixtures import HOSTILE, copy_run, hostile_run, markdown_texts, run_page, texts, unescaped_markup

from urllm.app.reader import RunData

SPACES = ["dual_graph_items", "minilm_items", "llm4cdsr_items", "rsllm_items", "users_domain", "users_mixed"]


@pytest.fixture(scope="module")
def run(tiny_artifacts):
    return RunData.open("tiny", tiny_artifacts).check()


@pytest.fixture(scope="module")
def line(run):
    """A test line of a user other than the first (the sidebar's default)."""
    return next(ln for ln in run.test_lines if ln.user != run.test_lines[0].user and ln.domain == 1)


def page(monkeypatch, artifacts, run, line, **params):
    at = run_page("pages/6_Embeddings.py", monkeypatch, artifacts, run="tiny", user=run.user_ids[line.user],
                  domain=run.domains[line.domain], **params)
    assert not at.exception, [e.value for e in at.exception]
    return at


def figure(at) -> dict:
    [chart] = at.get("plotly_chart")
    return json.loads(chart.proto.spec)


def values(array) -> list:
    """A figure JSON array: plotly writes numpy arrays as {"dtype", "bdata": base64}."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def marked(fig: dict, mark: str) -> list[int]:
    """The point positions of a mark's trace ("history item (8)" ...), [] when it is not drawn."""
    found = [t for t in fig["data"] if t.get("name", "").startswith(f"{mark} (")]
    return sorted(values(found[0]["customdata"])) if found else []


def brute_force(x: np.ndarray, j: int, k: int = 10) -> list[int]:
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = u @ u[j]
    sim[j] = -np.inf
    return np.argsort(-sim, kind="stable")[:k].tolist()


def test_the_tiny_run_has_every_space(run):
    assert [s["name"] for s in run.projection_spaces] == SPACES


@pytest.mark.parametrize("name", SPACES)
def test_each_space_renders_from_the_url(tiny_artifacts, monkeypatch, run, line, name):
    at = page(monkeypatch, tiny_artifacts, run, line, space=name)
    assert at.selectbox(key="_url_space").value == name and at.query_params["space"] == name
    fig = figure(at)
    label = next(s["label"] for s in run.projection_spaces if s["name"] == name)
    assert fig["layout"]["title"]["text"].startswith(label)
    assert all(t["type"] == "scattergl" for t in fig["data"])
    n = len(run.projection(name)["rows"])
    base = [t for t in fig["data"] if "customdata" not in t]
    assert sum(len(values(t["x"])) for t in base) == n  # every projected point once, under the marks
    assert not at.warning and len(at.dataframe[-1].value) == 10  # the neighbour table


def test_an_unknown_space_warns_and_falls_back(tiny_artifacts, monkeypatch, run, line):
    at = page(monkeypatch, tiny_artifacts, run, line, space="no_such_space")
    assert "no_such_space" in at.warning[0].value
    assert at.selectbox(key="_url_space").value == SPACES[0] and at.query_params["space"] == SPACES[0]


def test_item_spaces_mark_the_history_the_target_and_the_neighbours_items(tiny_artifacts, monkeypatch, run, line):
    at = page(monkeypatch, tiny_artifacts, run, line, space="minilm_items")
    fig, rows = figure(at), run.projection("minilm_items")["rows"].tolist()
    assert marked(fig, "history item") == sorted(rows.index(i) for i in set(line.history) if i in rows)
    assert marked(fig, "held-out target") == [rows.index(line.target)]
    recent = {i for u, _ in run.neighbours(line, run.main_k) for i in run.user_items(u)[-5:].tolist()}
    assert recent and marked(fig, "neighbours' recent item") == sorted(rows.index(i) for i in recent if i in rows)


def test_user_spaces_mark_the_line_and_its_retrieved_neighbours(tiny_artifacts, monkeypatch, run, line):
    neighbours = {u for u, _ in run.neighbours(line, run.main_k)}
    for name in ("users_domain", "users_mixed"):
        at = page(monkeypatch, tiny_artifacts, run, line, space=name)
        fig, pts = figure(at), run.projection(name)
        assert marked(fig, "selected line") == np.flatnonzero(pts["line"] == line.index).tolist()
        nbr = marked(fig, "retrieved neighbour")
        assert len(nbr) == len(neighbours) and {int(pts["rows"][j]) for j in nbr} == neighbours
        assert all(pts["line"][j] == -1 and pts["domain"][j] in (line.domain, -1) for j in nbr)


def test_search_highlights_and_lists_a_title(tiny_artifacts, monkeypatch, run, line):
    rows = run.projection("dual_graph_items")["rows"].tolist()
    title = run.titles[rows[3]]
    at = page(monkeypatch, tiny_artifacts, run, line, q=title)
    assert at.text_input(key="_emb_q").value == title
    hits = [j for j, r in enumerate(rows) if title.casefold() in run.titles[r].casefold()]
    assert marked(figure(at), "search match") == hits
    assert title in at.dataframe[0].value["point"].str.cat(sep="\n")
    at.text_input(key="_emb_q").set_value("").run()
    assert not marked(figure(at), "search match") and "q" not in at.query_params


def test_the_neighbour_table_lists_the_brute_force_neighbours(tiny_artifacts, monkeypatch, run, line):
    from safetensors.numpy import load_file

    items = load_file(tiny_artifacts / "tiny" / "stage1_vectors.safetensors")["items"]
    rows = run.projection("dual_graph_items")["rows"].tolist()
    pick = rows[5]
    at = page(monkeypatch, tiny_artifacts, run, line, space="dual_graph_items", pick=f"i{pick}")
    assert at.selectbox(key="_url_pick").value == f"i{pick}"
    table = at.dataframe[-1].value
    want = [run.titles[rows[n]] for n in brute_force(items[rows], rows.index(pick))]
    assert table["title"].tolist() == want and run.titles[pick] not in want
    assert table["cosine"].is_monotonic_decreasing
    assert marked(figure(at), "picked point") == [rows.index(pick)]


def test_user_spaces_colour_by_the_lines_hit_or_miss(tiny_artifacts, monkeypatch, run, line):
    at = page(monkeypatch, tiny_artifacts, run, line, space="users_domain", colour="hit/miss")
    fig, pts = figure(at), run.projection("users_domain")
    lines = pts["line"][pts["line"] >= 0]
    top = run.rankings[lines, :10]
    hit = int((top == np.array([run.test_lines[i].target for i in lines])[:, None]).any(axis=1).sum())
    sizes = {t["name"]: len(values(t["x"])) for t in fig["data"]}
    assert sizes["dual-graph top-10 hit"] == hit and sizes["dual-graph top-10 miss"] == len(lines) - hit
    assert sizes["training user"] == int((pts["line"] < 0).sum())


def test_an_older_projections_file_still_renders(tmp_path, tiny_artifacts, monkeypatch, run, line):
    from safetensors.numpy import save_file

    arts = copy_run(tiny_artifacts, tmp_path)
    items, users = run.projection("dual_graph_items"), run.projection("users_domain")
    tests = users["line"] >= 0
    save_file({"items_rows": items["rows"], "items_xy": items["xy"], "items_domain": items["domain"],
               "users_rows": users["line"][tests], "users_xy": users["xy"][tests], "users_domain": users["domain"][tests]},
              str(arts / "tiny" / "projections.safetensors"))
    (arts / "tiny" / "projections.json").unlink()
    for name in ("dual_graph_items", "users_domain"):
        at = page(monkeypatch, arts, run, line, space=name)
        assert "predate" in texts(at) and "no neighbour tables" in texts(at)
        assert at.selectbox(key="_url_space").options == ["Dual-graph item table", "Users: domain-specific vectors (Eq. 14), test lines"]
        assert sum(len(values(t["x"])) for t in figure(at)["data"] if "customdata" not in t) == int(
            len(items["rows"]) if name == "dual_graph_items" else tests.sum())
    assert marked(figure(at), "selected line")  # the line is still found among the test lines


def test_embeddings_page_names_missing_projections(tmp_path, tiny_artifacts, monkeypatch, run, line):
    arts = copy_run(tiny_artifacts, tmp_path)
    (arts / "tiny" / "projections.safetensors").unlink()
    at = page(monkeypatch, arts, run, line)
    assert "projections.safetensors" in at.error[0].value and "missing" in at.error[0].value
    assert not at.get("plotly_chart")


@pytest.mark.parametrize("name", ["dual_graph_items", "users_mixed"])
def test_a_hostile_search_titles_and_ids_show_as_text(tmp_path, tiny_artifacts, monkeypatch, name):
    arts = hostile_run(tiny_artifacts, tmp_path)
    hostile = RunData.open("tiny", arts)
    at = page(monkeypatch, arts, hostile, hostile.test_lines[0], space=name, q=HOSTILE[:40])
    assert not at.error and any(t.startswith("search match (") for t in (d.get("name", "") for d in figure(at)["data"]))
    assert not [t for t in markdown_texts(at) if unescaped_markup(t)]
    spec = at.get("plotly_chart")[0].proto.spec
    assert "evil.example" in spec and not re.search(r"<(a|img)\b", spec, re.IGNORECASE)
