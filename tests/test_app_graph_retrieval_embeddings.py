"""The sequence-graph, retrieval and embeddings pages, and the figures they draw
(urllm/app/figures.py): content of the user named in the URL, widgets, damaged runs (the
Embeddings page's own tests: tests/test_app_embeddings.py)."""
import base64
import json

import numpy as np
import pytest
from app_fixtures import copy_run, run_page, texts

from urllm.app.figures import DOMAIN_COLOURS, item_neighbourhood_graph, sequence_graph
from urllm.app.reader import RunData


@pytest.fixture(scope="module")
def run(tiny_artifacts):
    return RunData.open("tiny", tiny_artifacts)


@pytest.fixture(scope="module")
def line(run):
    """A test line of a user other than the first (the sidebar's default), whose history
    holds both domains, for their second target domain."""
    mixed = [ln for ln in run.test_lines
             if ln.user != run.test_lines[0].user and len(set(run.item_domain[list(ln.history)].tolist())) == 2]
    return [ln for ln in mixed if ln.domain == 1][0]


def params(run, line):
    return {"run": "tiny", "user": run.user_ids[line.user], "domain": run.domains[line.domain]}


def figures(at) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def values(array) -> list:
    """A figure JSON array: plotly writes numpy arrays as {"dtype", "bdata": base64}."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def named(fig: dict, name: str) -> dict:
    return next(t for t in fig["data"] if t.get("name") == name)


def hover_texts(fig: dict) -> str:
    return "\n".join(t for trace in fig["data"] for t in trace.get("hovertext") or [])


def trace(fig, name: str):
    return next(t for t in fig.data if t.name == name)


# ---- figures ---------------------------------------------------------------------------

def test_sequence_graph_has_a_node_per_event_and_the_target_as_a_star(run, line):
    fig = sequence_graph(run, line)
    nodes = [t for t in fig.data if t.name in run.domains]
    assert sum(len(t.x) for t in nodes) == len(line.history)
    for d, name in enumerate(run.domains):
        t = trace(fig, name)
        assert t.marker.color == DOMAIN_COLOURS[d] and set(t.y) <= {d}
        assert len(t.x) == int((run.item_domain[list(line.history)] == d).sum())
    target = trace(fig, "held-out target")
    assert target.marker.symbol == "star" and list(target.x) == [len(line.history) + 1]
    assert run.titles[line.target] in target.hovertext[0]
    hovers = "\n".join(h for t in nodes for h in t.hovertext)
    assert all(run.titles[i] in hovers for i in line.history)
    # one edge per consecutive pair (history + target); dashed ones switch domain
    path = [int(run.item_domain[i]) for i in line.history] + [int(run.item_domain[line.target])]
    switches = sum(a != b for a, b in zip(path, path[1:]))
    assert trace(fig, "cross-domain step").line.dash == "dash"
    assert len(trace(fig, "cross-domain step").x) == 3 * switches
    assert len(trace(fig, "same-domain step").x) == 3 * (len(path) - 1 - switches)


def test_sequence_graph_keeps_the_most_recent_events_and_says_so(run, line):
    fig = sequence_graph(run, line, max_items=3)
    nodes = [x for t in fig.data if t.name in run.domains for x in t.x]
    assert sorted(nodes) == [len(line.history) - 2, len(line.history) - 1, len(line.history)]
    assert f"most recent 3 of {len(line.history)}" in fig.layout.title.text


def test_item_neighbourhood_graph_draws_the_next_items_with_count_widths(run):
    item = max(run.transitions, key=lambda i: len(run.transitions[i]))
    expected = run.item_neighbourhood(item, 4)
    fig = item_neighbourhood_graph(run, item, 4)
    nodes = [t for t in fig.data if t.name in run.domains]
    assert sum(len(t.x) for t in nodes) == len(expected) == 4
    hovers = "\n".join(h for t in nodes for h in t.hovertext)
    assert all(f"{run.titles[i]}<br>" in hovers and f"{c}×" in hovers for i, c in expected)
    widths = [t.line.width for t in fig.data if t.mode == "lines"]
    assert widths == sorted(widths, reverse=True) and len(widths) == 4  # neighbours come most frequent first
    assert trace(fig, "picked item").hovertext[0].startswith(run.titles[item])


# ---- pages -----------------------------------------------------------------------------

def test_sequence_graph_page_shows_the_url_user(tiny_artifacts, monkeypatch, run, line):
    at = run_page("pages/2_Sequence_graph.py", monkeypatch, tiny_artifacts, **params(run, line))
    assert not at.exception
    assert at.selectbox(key="_pick_user").value == run.user_ids[line.user]
    graph, neighbourhood = figures(at)
    hovers = hover_texts(graph)
    assert all(run.titles[i] in hovers for i in line.history) and run.titles[line.target] in hovers
    counts = {m.label: m.value for m in at.metric}
    for d, name in enumerate(run.domains):
        assert counts[f"{name} events"] == str(int((run.item_domain[list(line.history)] == d).sum()))
    rank = run.target_rank(run.dual_graph_top(line), line)
    assert counts["dual-graph rank of the target"] == (str(rank) if rank else f"> {len(run.dual_graph_top(line))}")
    assert counts["cold-start"] == ("yes" if run.cold_start(line) else "no")
    assert run.titles[line.target] in texts(at)

    picker = at.selectbox(key="_seq_item")
    assert picker.value == line.history[-1]  # the most recent item first
    expected = run.item_neighbourhood(line.history[-1], 10)
    assert expected  # the tiny run's transitions give this item successors
    table = at.dataframe[0].value
    assert list(table["title"]) == [run.titles[i] for i, _ in expected]
    assert list(table["count"]) == [c for _, c in expected]
    assert run.titles[line.history[-1]] in hover_texts(neighbourhood)


def test_sequence_graph_page_follows_the_picked_item(tiny_artifacts, monkeypatch, run, line):
    at = run_page("pages/2_Sequence_graph.py", monkeypatch, tiny_artifacts, **params(run, line))
    other = next(i for i in reversed(line.history) if i != line.history[-1] and run.item_neighbourhood(i, 10))
    assert run.item_label(other) in at.selectbox(key="_seq_item").options
    at.selectbox(key="_seq_item").select(other).run()
    assert not at.exception
    expected = run.item_neighbourhood(other, 10)
    assert list(at.dataframe[0].value["title"]) == [run.titles[i] for i, _ in expected]
    assert named(figures(at)[1], "picked item")["hovertext"][0].startswith(run.titles[other])


def neighbour_tables(at):
    return [col.dataframe[0].value for col in at.columns[-2:]]


def test_retrieval_page_lists_the_neighbours_of_both_methods(tiny_artifacts, monkeypatch, run, line):
    at = run_page("pages/3_Retrieval.py", monkeypatch, tiny_artifacts, **params(run, line))
    assert not at.exception
    k = at.slider(key="_ret_k").value
    assert k == run.config["llm"]["k"]
    domain, mixed = neighbour_tables(at)
    for table, vector in ((domain, "domain"), (mixed, "mixed")):
        expected = run.neighbours(line, k, vector)
        assert list(table["user"]) == [run.user_ids[u] for u, _ in expected]
        assert list(table["score"]) == pytest.approx([s for _, s in expected], abs=1e-3)
        for (u, _), overlap in zip(expected, table["overlap"]):
            assert overlap == len(set(run.user_items(u).tolist()) & set(line.history))

    at.slider(key="_ret_k").set_value(5).run()
    assert not at.exception
    domain, mixed = neighbour_tables(at)
    expected = {v: run.neighbours(line, 5, v) for v in ("domain", "mixed")}
    assert len(domain) == len(mixed) == 5
    assert list(domain["user"]) == [run.user_ids[u] for u, _ in expected["domain"]]
    both = {u for u, _ in expected["domain"]} & {u for u, _ in expected["mixed"]}
    assert f"{len(both)} of the 5" in texts(at)
    assert len([e for e in at.expander if e.label.startswith("#")]) == 10


@pytest.mark.parametrize("vector", ["domain", "mixed"])
def test_the_apps_neighbours_are_the_pipelines(tiny_artifacts, run, line, vector):
    """RunData.neighbours (the saved index) and the pipeline's Neighbours (built from the
    stage-1 vectors) find the same users for the same line."""
    from safetensors.torch import load_file

    from urllm.methods.retrieval import RetrievalConfig
    from urllm.methods.urllm_stage2 import Neighbours

    cfg = RetrievalConfig(**run.config["llm"]["retrieval"] | {"vector": vector})
    pipeline = Neighbours(run.dataset(), load_file(tiny_artifacts / "tiny" / "stage1_vectors.safetensors"), cfg)
    for k in (0, 1, 5):
        found, expected = run.neighbours(line, k, vector), pipeline.query("test", line.index, k)
        assert [u for u, _ in found] == [u for u, _ in expected] and line.user not in [u for u, _ in found]
        assert [s for _, s in found] == pytest.approx([s for _, s in expected], rel=1e-5)
    assert len(run.neighbours(line, 5, vector)) == 5


def test_retrieval_page_names_a_corrupt_index(tmp_path, tiny_artifacts, monkeypatch, run, line):
    arts = copy_run(tiny_artifacts, tmp_path)
    (arts / "tiny" / "retrieval_A.faiss").write_bytes(b"not an index")
    at = run_page("pages/3_Retrieval.py", monkeypatch, arts, **params(run, line))
    assert not at.exception
    assert "retrieval_A.faiss" in at.error[0].value
    (arts / "tiny" / "retrieval_A.faiss").unlink()
    at = run_page("pages/3_Retrieval.py", monkeypatch, arts, **params(run, line))
    assert not at.exception and "retrieval_A.faiss" in at.error[0].value


def test_pages_say_when_a_stage_is_missing(tmp_path, tiny_artifacts, monkeypatch, run, line):
    arts = copy_run(tiny_artifacts, tmp_path)
    manifest = json.loads((arts / "tiny" / "manifest.json").read_text())
    manifest["stages"] = [s for s in manifest["stages"] if s["name"] not in ("retrieval", "projections")]
    (arts / "tiny" / "manifest.json").write_text(json.dumps(manifest))
    for page, stage in (("pages/3_Retrieval.py", "retrieval"), ("pages/6_Embeddings.py", "projections")):
        at = run_page(page, monkeypatch, arts, **params(run, line))
        assert not at.exception
        assert f"no '{stage}' stage" in " ".join(i.value for i in at.info)
