"""LLM4CDSR's hierarchical user profiles: clustering, the two LLM rounds and their
fallbacks, which sequences a run profiles, and the files the app and the model read."""
import numpy as np
import pytest
import torch
from llm_fixtures import tiny_lm, tiny_tokenizer

from urllm.data import load_dataset
from urllm.methods import llm4cdsr_profiles as prof
from urllm.methods.llm4cdsr_profiles import ProfileConfig, build_profiles, cluster_items, run_sequences


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("synthetic?n_users=60")


@pytest.fixture(scope="module")
def lm(dataset):
    tok = tiny_tokenizer(dataset.item_titles + ["A user interacted with these items: describe interested profile"])
    return tiny_lm(tok), tok


def two_blobs(n_items: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    vectors = rng.normal(0, 0.01, (n_items, 8))
    vectors[: n_items // 2, 0] += 5.0  # items 0..n/2-1 far from the others
    return vectors


def test_clusters_partition_the_distinct_items_and_follow_the_vectors():
    vectors = two_blobs(10)
    items = [1, 7, 2, 8, 1, 3, 9]  # 1 repeats
    clusters = cluster_items(items, vectors, k=2, seed=0)
    assert sorted(i for c in clusters for i in c) == [1, 2, 3, 7, 8, 9]
    assert sorted(map(sorted, clusters)) == [[1, 2, 3], [7, 8, 9]]  # the two blobs, exactly
    assert clusters == sorted(clusters, key=lambda c: max(items.index(i) for i in c))  # by most recent item
    assert cluster_items(items, vectors, k=2, seed=0) == clusters  # seeded
    assert cluster_items([4, 4], vectors, k=3, seed=0) == [[4]]  # fewer distinct items than k
    assert cluster_items([], vectors, k=3, seed=0) == []


def test_profiles_have_a_summary_per_cluster_and_a_profile_text(dataset, lm):
    model, tok = lm
    seqs = {"a": dataset.users[0].items, "b": dataset.users[1].items[:1]}
    cfg = ProfileConfig(clusters=2, max_new_tokens=4, batch_size=3)
    vectors = two_blobs(dataset.n_items)
    profiles = build_profiles(dataset, seqs, vectors, model, tok, cfg, progress=False)
    assert set(profiles) == {"a", "b"}
    a, b = profiles["a"], profiles["b"]
    assert len(a.clusters) == 2 and all(c["summary"] for c in a.clusters) and a.text
    assert a.items == [int(i) for i in dataset.users[0].items[-cfg.max_items:]]
    assert len(b.clusters) == 1 and b.text == b.clusters[0]["summary"]  # one cluster: its summary is the profile
    assert build_profiles(dataset, seqs, vectors, model, tok, cfg, progress=False)["a"].to_json() == a.to_json()


def test_empty_generations_fall_back_to_titles_and_joined_summaries(dataset, lm, monkeypatch):
    model, tok = lm
    monkeypatch.setattr(prof, "generate_texts", lambda m, t, requests, *a, **k: [""] * len(requests))
    profile = build_profiles(dataset, {"a": dataset.users[0].items}, two_blobs(dataset.n_items), model, tok,
                             ProfileConfig(clusters=2), progress=False)["a"]
    for cluster in profile.clusters:
        assert cluster["summary"].startswith("Interested in ")
        assert dataset.item_titles[cluster["items"][-1]] in cluster["summary"]
    assert profile.text == " ".join(c["summary"] for c in profile.clusters)


def test_generation_is_batched_left_padded_and_one_line(lm):
    model, tok = lm
    requests = ["short", "a much longer request with many more words in it than the first"]
    together = prof.generate_texts(model, tok, requests, max_new_tokens=5, batch_size=2)
    alone = [prof.generate_texts(model, tok, [r], max_new_tokens=5, batch_size=1)[0] for r in requests]
    assert together == alone  # padding does not change a greedy answer
    assert all("\n" not in t for t in together)


def test_a_run_profiles_training_sequences_without_held_out_targets(dataset):
    cfg = ProfileConfig(train_users=5, test_lines=2)
    lines = [3, 9, 11]
    train, test = run_sequences(dataset, cfg, lines, seed=0)
    assert len(train) == 5 and list(test) == ["3", "9"]
    assert run_sequences(dataset, cfg, lines, seed=0)[0].keys() == train.keys()
    held_out = [ex for split in ("valid", "test") for ex in dataset.splits[split]]
    longest = {}
    for ex in dataset.splits["train"]:
        if len(ex.history) >= len(longest.get(ex.user, ([], 0))[0]):
            longest[ex.user] = (list(ex.history), ex.target)
    for user, seq in train.items():  # the user's longest training line, history + target
        history, target = longest[int(user)]
        assert list(seq) == history + [target]
    for user, seq in train.items():
        assert list(seq) == list(dataset.users[int(user)].items[: len(seq)])  # a prefix of the user's sequence ...
        for ex in held_out:
            if ex.user == int(user):
                assert len(ex.history) >= len(seq)  # ... that ends before every held-out target of the user
    assert np.array_equal(test["3"], dataset.splits["test"][3].history)


def test_run_files_round_trip_to_the_guidance(tmp_path, dataset, lm):
    model, tok = lm
    cfg = ProfileConfig(train_users=3, test_lines=1, clusters=2, max_new_tokens=3)
    train, lines = run_sequences(dataset, cfg, [0, 1], seed=0)
    built = build_profiles(dataset, train | {"line0": lines["0"]}, two_blobs(dataset.n_items), model, tok, cfg,
                           progress=False)
    files = prof.save_run_profiles(tmp_path, {u: built[u] for u in train}, {"0": built["line0"]}, cfg)
    assert all(f.is_file() for f in files)
    users, emb = prof.load_guidance(tmp_path)
    assert users.tolist() == [int(u) for u in train] and emb.shape == (3, 384)
    assert torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-4)  # MiniLM unit vectors
    assert prof.load_guidance(tmp_path / "nothing") is None
    (tmp_path / "none").mkdir()
    prof.save_run_profiles(tmp_path / "none", {}, {}, cfg)  # profiling off: files written, no guidance
    assert prof.load_guidance(tmp_path / "none") is None
