"""User retrieval (urllm/methods/retrieval.py): exact faiss search vs the numpy reference, self
exclusion, one result per user, padding, approximate indexes, files, config, domains."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from urllm.methods.retrieval import RetrievalConfig, UserIndex, build_domain_indexes, numpy_topk


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def random_users(n=400, d=16, seed=0) -> np.ndarray:
    return unit(np.random.default_rng(seed).standard_normal((n, d)))


def clustered(n=2000, d=16, clusters=20, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((clusters, d)))
    return unit(centres[rng.integers(0, clusters, n)] + 0.3 * rng.standard_normal((n, d)))


def test_flat_matches_numpy_reference():
    x = random_users()
    queries = unit(np.random.default_rng(1).standard_normal((25, x.shape[1])))
    ids = np.arange(len(x)) * 7 + 3  # row r belongs to user 7r+3
    scores, users = UserIndex.build(x, ids).search(queries, k=10)
    ref_scores, ref_rows = numpy_topk(x, queries, 10)
    assert users.dtype == np.int64 and scores.dtype == np.float32 and users.shape == (25, 10)
    np.testing.assert_array_equal(users, ids[ref_rows])
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first


def test_numpy_topk_caps_k_and_breaks_ties_by_row():
    x = np.array([[1, 0], [1, 0], [0, 1]], np.float32)
    s, r = numpy_topk(x, np.array([[1, 0]], np.float32), 5)
    assert r.tolist() == [[0, 1, 2]] and s.tolist() == [[1, 1, 0]]


def test_query_user_is_never_returned():
    x = random_users()
    idx = UserIndex.build(x, np.arange(len(x)))
    queries = np.arange(30)
    _, plain = idx.search(x[queries], k=3)
    assert (plain[:, 0] == queries).all()  # its own vector would be its top-1 ...
    scores, users = idx.search(x[queries], k=3, exclude=queries)
    assert not (users == queries[:, None]).any()  # ... but it is excluded
    _, ref = numpy_topk(x, x[queries], 4)
    np.testing.assert_array_equal(users, ref[:, 1:])  # the next three, in order
    assert np.isfinite(scores).all()


def test_rows_of_one_user_collapse_to_one_result():
    x = random_users(n=100)
    q = x[:1].copy()
    dup = unit(q + 0.01 * np.random.default_rng(2).standard_normal((3, x.shape[1])))
    vectors = np.concatenate([x[1:], dup])  # user 500 owns three rows, all near the query
    ids = np.concatenate([np.arange(1, 100), [500, 500, 500]])
    idx = UserIndex.build(vectors, ids)
    scores, users = idx.search(q, k=5)
    assert users[0, 0] == 500 and (users[0] == 500).sum() == 1 and len(set(users[0])) == 5
    assert scores[0, 0] == pytest.approx(float((dup @ q[0]).max()), abs=1e-5)  # its best row
    _, users = idx.search(q, k=5, exclude=[500])  # all three rows excluded, still 5 users
    assert 500 not in users[0] and (users[0] >= 0).all() and len(set(users[0])) == 5


def test_too_few_users_pads_with_minus_one():
    x = random_users(n=4)
    scores, users = UserIndex.build(x, [10, 11, 12, 13]).search(x[:2], k=6, exclude=[10, 99])
    assert users.shape == (2, 6)
    assert sorted(users[0, :3]) == [11, 12, 13] and (users[0, 3:] == -1).all()
    assert sorted(users[1, :4]) == [10, 11, 12, 13] and (users[1, 4:] == -1).all()
    assert np.isneginf(scores[0, 3:]).all() and np.isfinite(scores[0, :3]).all()
    empty = UserIndex.build(np.zeros((0, 16), np.float32), [])
    s, u = empty.search(x[:1], k=2)
    assert (u == -1).all() and np.isneginf(s).all()


@pytest.mark.parametrize("cfg", [RetrievalConfig(index="hnsw", hnsw_m=16, ef_search=128),
                                 RetrievalConfig(index="ivf", nlist=16, nprobe=8)], ids=["hnsw", "ivf"])
def test_approximate_indexes_agree_with_flat(cfg):
    x, ids = clustered(), np.arange(2000)
    queries = np.arange(0, 2000, 40)  # 50 training users as queries
    _, exact = UserIndex.build(x, ids).search(x[queries], k=10, exclude=queries)
    idx = UserIndex.build(x, ids, cfg)
    scores, approx = idx.search(x[queries], k=10, exclude=queries)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall >= 0.9, recall
    assert not (approx == queries[:, None]).any()
    again = UserIndex.build(x, ids, cfg).search(x[queries], k=10, exclude=queries)
    np.testing.assert_array_equal(again[1], approx)  # deterministic build
    idx.tune(nprobe=1, ef_search=10)  # cheaper search: still valid results, never worse than nothing
    assert not (idx.search(x[queries], k=10, exclude=queries)[1] == queries[:, None]).any()
    with pytest.raises(ValueError, match="nprobe"):
        idx.tune(nprobe=0)


def test_ivf_lowers_nlist_for_few_users():
    idx = UserIndex.build(random_users(n=200), np.arange(200), RetrievalConfig(index="ivf", nlist=1024, nprobe=64))
    import faiss
    ivf = faiss.extract_index_ivf(idx.index)
    assert ivf.nlist == 5 and ivf.nprobe == 5


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_save_load_round_trip(tmp_path, kind):
    x = clustered(n=600)
    ids = np.arange(600) + 1000
    cfg = RetrievalConfig(index=kind, k=4, nlist=8, nprobe=3, hnsw_m=8, ef_search=40)
    idx = UserIndex.build(x, ids, cfg)
    path = tmp_path / "sub" / "users_A.faiss"
    written = idx.save(path)
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["users_A.faiss", "users_A.faiss.json"]
    assert sorted(written) == sorted((tmp_path / "sub").iterdir())
    loaded = UserIndex.load(path)
    assert loaded.cfg == cfg and len(loaded) == 600
    queries, exclude = x[:20], ids[:20]
    for a, b in zip(idx.search(queries, exclude=exclude), loaded.search(queries, exclude=exclude)):
        np.testing.assert_array_equal(a, b)
    idx.save(path)  # overwrite in place: still exactly two files
    assert len(list((tmp_path / "sub").iterdir())) == 2


def test_load_refuses_mismatched_or_missing_files(tmp_path):
    x = random_users(n=50)
    UserIndex.build(x, np.arange(50)).save(tmp_path / "a.faiss")
    UserIndex.build(x[:40], np.arange(40)).save(tmp_path / "b.faiss")
    (tmp_path / "b.faiss").replace(tmp_path / "a.faiss")  # index replaced, json not
    with pytest.raises(ValueError, match="does not match"):
        UserIndex.load(tmp_path / "a.faiss")
    with pytest.raises(FileNotFoundError, match="missing"):
        UserIndex.load(tmp_path / "b.faiss")


@pytest.mark.parametrize("field,value", [("k", 0), ("vector", "both"), ("index", "lsh"), ("nlist", 0),
                                         ("nprobe", 0), ("hnsw_m", 1), ("ef_search", 0)])
def test_config_validation_names_the_field(field, value):
    cfg = RetrievalConfig(**{field: value})
    with pytest.raises(ValueError, match=field):
        cfg.validate()
    with pytest.raises(ValueError, match=field):
        UserIndex.build(random_users(n=5), np.arange(5), cfg)
    RetrievalConfig().validate()


def test_search_argument_errors():
    idx = UserIndex.build(random_users(n=10), np.arange(10))
    with pytest.raises(ValueError, match="dimension"):
        idx.search(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="excluded"):
        idx.search(random_users(n=2), exclude=[1])
    with pytest.raises(ValueError, match="user ids"):
        UserIndex.build(random_users(n=3), [0, 1])


def test_domain_indexes_follow_their_own_column():
    # [line, domain, d]; the query user 0 leans to user 1 in domain A and to user 2 in B
    vectors = np.array([
        [[1, 0], [0, 1]],        # user 0 (the query)
        [[0.9, 0], [1, 0]],      # user 1: close in A, far in B
        [[0, 1], [0, 0.9]],      # user 2: far in A, close in B
        [[-1, 0], [0, -1]],      # user 3: far in both
        [[10, 0], [0, 10]],      # user 1 again (a later line): must be ignored
    ], np.float32)
    user_ids = [0, 1, 2, 3, 1]
    idx_a, idx_b = build_domain_indexes(torch.from_numpy(vectors), user_ids, RetrievalConfig(k=1))
    assert len(idx_a) == len(idx_b) == 4  # one row per user
    sa, ua = idx_a.search(vectors[:1, 0], exclude=[0])
    sb, ub = idx_b.search(vectors[:1, 1], exclude=[0])
    assert ua.tolist() == [[1]] and sa[0, 0] == pytest.approx(0.9)  # first line of user 1
    assert ub.tolist() == [[2]] and sb[0, 0] == pytest.approx(0.9)


def test_mixed_vector_table_serves_both_domains():
    mixed = random_users(n=30, d=8)
    a, b = build_domain_indexes(mixed, np.arange(30), RetrievalConfig(vector="mixed"))
    for x, y in zip(a.search(mixed[:5], exclude=np.arange(5)), b.search(mixed[:5], exclude=np.arange(5))):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="n_lines, 2, d"):
        build_domain_indexes(mixed, np.arange(30))  # a 2-d table needs vector="mixed"
