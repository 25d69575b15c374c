"""The projections stage's files (urllm/pipeline/projections.py) on a tiny synthetic dataset
with random vectors: every space the run folder has, its layout, and a neighbour table that
matches brute force and never names the point itself."""
import json

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from urllm.data import load_dataset
from urllm.io import atomic_save_tensors
from urllm.models.config import ProjectionConfig
from urllm.pipeline.projections import write_projections

D = 8


@pytest.fixture(scope="module")
def ds():
    return load_dataset("synthetic?n_users=40")


def _vectors(ds, seed=0):
    g = torch.Generator().manual_seed(seed)
    n_train, n_test = len(ds.splits["train"]), len(ds.splits["test"])
    return {"items": torch.randn(ds.n_items, D, generator=g),
            "users_train": torch.randn(n_train, 2, D, generator=g), "users_mixed_train": torch.randn(n_train, D, generator=g),
            "users_test": torch.randn(n_test, 2, D, generator=g), "users_mixed_test": torch.randn(n_test, D, generator=g)}


def _brute_force(x, k=10):
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = u @ u.T
    np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1, kind="stable")[:, :k]


def _write(tmp_path, ds, vectors, max_points=1000):
    files, summary = write_projections(tmp_path, ds, vectors, ProjectionConfig(max_points=max_points, seed=0))
    assert [f.name for f in files] == ["projections.safetensors", "projections.json"]
    return json.loads((tmp_path / "projections.json").read_text()), load_file(tmp_path / "projections.safetensors"), summary


def test_only_the_dual_graph_exports_give_its_items_and_the_two_user_spaces(tmp_path, ds):
    vectors = _vectors(ds)
    listing, t, summary = _write(tmp_path, ds, vectors)
    assert [s["name"] for s in listing["spaces"]] == ["dual_graph_items", "users_domain", "users_mixed"]
    assert listing["k"] == 10 and set(summary) == {"dual_graph_items", "users_domain", "users_mixed"}
    rows = t["dual_graph_items.rows"]
    np.testing.assert_array_equal(rows, np.arange(ds.n_items))
    np.testing.assert_array_equal(t["dual_graph_items.domain"], ds.item_domain[rows])
    assert t["dual_graph_items.xy"].shape == (ds.n_items, 2) and np.isfinite(t["dual_graph_items.xy"]).all()
    np.testing.assert_array_equal(t["dual_graph_items.nbrs"], _brute_force(vectors["items"].numpy()))


def test_user_spaces_hold_the_test_lines_and_every_training_user(tmp_path, ds):
    vectors = _vectors(ds, seed=1)
    _, t, _ = _write(tmp_path, ds, vectors)
    test, train = ds.splits["test"], ds.splits["train"]
    train_users = list(dict.fromkeys(ex.user for ex in train))  # retrieval's index: each user once, first line
    first = [next(i for i, ex in enumerate(train) if ex.user == u) for u in train_users]
    n, m = len(test), len(train_users)
    line, rows, dom = t["users_domain.line"], t["users_domain.rows"], t["users_domain.domain"]
    assert len(line) == n + 2 * m
    np.testing.assert_array_equal(line[:n], np.arange(n))
    np.testing.assert_array_equal(rows[:n], [ex.user for ex in test])
    np.testing.assert_array_equal(dom[:n], [ex.domain for ex in test])
    assert (line[n:] == -1).all() and rows[n:].tolist() == train_users * 2 and dom[n:].tolist() == [0] * m + [1] * m
    # neighbours over the vectors each point stands for: Eq. 14 for its domain
    x = np.concatenate([vectors["users_test"].numpy()[np.arange(n), dom[:n]],
                        vectors["users_train"].numpy()[first, 0], vectors["users_train"].numpy()[first, 1]])
    np.testing.assert_array_equal(t["users_domain.nbrs"], _brute_force(x))
    mixed = t["users_mixed.line"]
    assert len(mixed) == n + m and (mixed[n:] == -1).all() and (t["users_mixed.domain"][n:] == -1).all()
    x = np.concatenate([vectors["users_mixed_test"].numpy(), vectors["users_mixed_train"].numpy()[first]])
    np.testing.assert_array_equal(t["users_mixed.nbrs"], _brute_force(x))


def test_every_item_space_the_folder_has_is_written(tmp_path, ds):
    from urllm.methods.rsllm_run import PROJECTORS, _projectors

    vectors = _vectors(ds, seed=2)
    minilm = np.random.default_rng(0).normal(size=(ds.n_items, 12)).astype(np.float32)
    atomic_save_tensors(tmp_path / "item_text_minilm.safetensors", {"embeddings": torch.from_numpy(minilm)})
    adapted = torch.randn(ds.n_items, 6)
    atomic_save_tensors(tmp_path / "llm4cdsr_items.safetensors", {"items": adapted})
    (tmp_path / "rsllm").mkdir()
    torch.manual_seed(0)
    projector, _ = _projectors(D, 5)
    atomic_save_tensors(tmp_path / "rsllm" / PROJECTORS, {f"item.{k}": v for k, v in projector.state_dict().items()})
    (tmp_path / "rsllm" / "training.json").write_text(json.dumps({"id_dim": D, "llm_dim": 5}))

    listing, t, _ = _write(tmp_path, ds, vectors, max_points=30)  # a sample: neighbours among the sampled points
    names = [s["name"] for s in listing["spaces"]]
    assert names == ["dual_graph_items", "minilm_items", "llm4cdsr_items", "rsllm_items", "users_domain", "users_mixed"]
    assert {s["name"]: s["dim"] for s in listing["spaces"]}["rsllm_items"] == 5
    with torch.no_grad():
        projected = projector.eval()(vectors["items"]).numpy()
    for name, x in (("minilm_items", minilm), ("llm4cdsr_items", adapted.numpy()), ("rsllm_items", projected)):
        rows, nbrs = t[f"{name}.rows"], t[f"{name}.nbrs"]
        assert len(rows) == 30 and np.all(np.diff(rows) > 0) and t[f"{name}.xy"].shape == (30, 2)
        np.testing.assert_array_equal(nbrs, _brute_force(x[rows]))
        assert not (nbrs == np.arange(30)[:, None]).any()
        u = x[rows] / np.linalg.norm(x[rows], axis=1, keepdims=True)
        np.testing.assert_allclose(t[f"{name}.sims"], np.take_along_axis(u @ u.T, nbrs, axis=1), atol=1e-5)


def test_spaces_laid_out_side_by_side_equal_one_after_the_other(tmp_path, ds):
    vectors = _vectors(ds, seed=2)
    cfg = ProjectionConfig(max_points=1000, seed=0)
    for name, jobs in (("one", 1), ("two", 2)):
        (tmp_path / name).mkdir()
        write_projections(tmp_path / name, ds, vectors, cfg, n_jobs=jobs)
    one, two = (load_file(tmp_path / d / "projections.safetensors") for d in ("one", "two"))
    assert set(one) == set(two) and len(one) > 0
    for key in one:
        np.testing.assert_array_equal(two[key], one[key], err_msg=key)
    assert (tmp_path / "one" / "projections.json").read_text() == (tmp_path / "two" / "projections.json").read_text()
