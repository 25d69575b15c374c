"""Stage 1: item graphs, causal encoders, losses, and a tiny end-to-end training run."""
import numpy as np
import pytest
import torch

from urllm.data import Dataset, Example, User, load_dataset
from urllm.models.dual_graph import DualGraphConfig, DualGraphModel, ablation_config, sasrec_config
from urllm.models.evaluation import evaluate, rank_examples
from urllm.models.graphs import build_graphs
from urllm.models.popularity import Popularity
from urllm.models.sequences import pad_histories, training_sequences
from urllm.models.trainer import FitConfig, SequenceScorer, fit

TINY = dict(dim=16, n_blocks=1, n_heads=2, dropout=0.0, max_len=12)


def hand_dataset() -> Dataset:
    """Items 0-2 in domain A, 3-5 in domain B; two training users."""
    titles = ["a0", "a1", "a2", "b3", "b4", "b5"]
    domain = np.array([0, 0, 0, 1, 1, 1], dtype=np.int8)
    attrs = [("red",), ("red",), ("blue",), ("red",), ("blue",), ("blue", "big")]
    seqs = [np.array([0, 3, 1, 4, 1]), np.array([2, 5, 3, 0])]
    users = [User(f"u{i}", s, np.arange(len(s))) for i, s in enumerate(seqs)]
    train = [Example(0, 0, seqs[0][:4], 1), Example(1, 0, seqs[1][:3], 0)]
    return Dataset("hand", ("A", "B"), titles, domain, attrs, titles, users, {"train": train, "valid": [], "test": []})


def edge_set(graph):
    return {tuple(e) for e in graph.edge_index.T.tolist()}


def edge_weights(graph):
    return {tuple(e): w for e, w in zip(graph.edge_index.T.tolist(), graph.weight.tolist())}


def test_graph_edges_on_hand_made_sequences():
    ds = hand_dataset()
    seqs = [u.items for u in ds.users]
    g = build_graphs(seqs, ds.item_domain, ds.item_attributes, min_word_items=2, max_word_share=0.9)
    # merged: 0-3, 3-1, 1-4, 4-1 (same edge), 2-5, 5-3, 3-0 (same as 0-3) -> 5 undirected edges
    assert edge_set(g.cross) == {(0, 3), (3, 0), (1, 3), (3, 1), (1, 4), (4, 1), (2, 5), (5, 2), (3, 5), (5, 3)}
    weights = edge_weights(g.cross)
    assert weights[(0, 3)] == weights[(3, 0)] == 2 and weights[(1, 4)] == 2 and weights[(2, 5)] == 1
    # domain A subsequences: [0, 1, 1] -> 0-1 (1-1 self-loop dropped); [2, 0] -> 0-2
    assert edge_set(g.domain[0]) == {(0, 1), (1, 0), (0, 2), (2, 0)}
    # domain B subsequences: [3, 4]; [5, 3]
    assert edge_set(g.domain[1]) == {(3, 4), (4, 3), (3, 5), (5, 3)}
    # words on >= 2 items: red (0, 1, 3), blue (2, 4, 5); "big" (one item) is dropped
    assert g.words == ["blue", "red"]
    assert g.attribute.edge_index.shape[1] == 2 * 6  # every item has one kept word, both directions
    assert set(g.attribute.weight.tolist()) == {1.0}


def test_graph_vocabulary_drops_words_on_too_many_items():
    ds = hand_dataset()
    g = build_graphs([u.items for u in ds.users], ds.item_domain, ds.item_attributes, max_word_share=0.4)
    assert g.words == []  # red and blue are each on half the items


def model_for(ds, cfg):
    graphs = build_graphs([u.items for u in ds.users], ds.item_domain, ds.item_attributes, max_word_share=0.9)
    return DualGraphModel(cfg, torch.from_numpy(ds.item_domain), graphs)


@pytest.mark.parametrize("cfg", [DualGraphConfig(**TINY), sasrec_config(**TINY)], ids=["dual", "sasrec"])
def test_future_item_cannot_change_earlier_outputs(cfg):
    torch.manual_seed(0)
    model = model_for(hand_dataset(), cfg).eval()
    seq = torch.tensor([[0, 3, 1, 4, 2, 5]])
    changed = seq.clone()
    changed[0, 4:] = torch.tensor([5, 0])  # new items at positions 4 and 5 only
    with torch.no_grad():
        tables = model.item_tables()
        before_mixed, before_dom = model.encode(seq, tables)
        after_mixed, after_dom = model.encode(changed, tables)
    assert torch.allclose(before_mixed[:, :4], after_mixed[:, :4], atol=1e-6)
    assert not torch.allclose(before_mixed[:, 4:], after_mixed[:, 4:], atol=1e-6)
    for d in (0, 1):
        if before_dom[d] is not None:
            assert torch.allclose(before_dom[d][:, :4], after_dom[d][:, :4], atol=1e-6)


def test_domain_thread_reads_only_its_domain():
    torch.manual_seed(0)
    model = model_for(hand_dataset(), DualGraphConfig(**TINY)).eval()
    seq = torch.tensor([[0, 3, 1, 4]])
    swapped_b = torch.tensor([[0, 5, 1, 3]])  # same A items, other B items
    with torch.no_grad():
        tables = model.item_tables()
        _, dom1 = model.encode(seq, tables)
        _, dom2 = model.encode(swapped_b, tables)
    assert torch.allclose(dom1[0], dom2[0], atol=1e-6)  # the A thread ignores B items
    assert not torch.allclose(dom1[1], dom2[1], atol=1e-6)
    assert torch.all(dom1[1][0, 0] == 0)  # no B item yet at position 0


def test_truncation_keeps_most_recent_and_empty_history_is_encoded():
    seq, lengths = pad_histories([np.arange(10), np.array([], dtype=np.int64)], max_len=4, pad=99)
    assert seq[0].tolist() == [6, 7, 8, 9] and lengths.tolist() == [4, 0]
    assert seq[1].tolist() == [99, 99, 99, 99]
    ds = hand_dataset()
    graphs = build_graphs([ds.users[0].items], ds.item_domain, ds.item_attributes)  # items 2 and 5 never seen
    model = DualGraphModel(DualGraphConfig(**TINY), torch.from_numpy(ds.item_domain), graphs).eval()
    scores = SequenceScorer(model).scores([np.array([], dtype=np.int64), np.array([0, 1, 2] * 10), np.array([2, 5])], 1)
    assert scores.shape == (3, 3) and torch.isfinite(scores).all()
    assert not torch.allclose(scores[0], scores[2])  # unseen items still shape the user vector


def test_training_sequences_merge_a_users_lines():
    ds = hand_dataset()
    ds.splits["train"].append(Example(0, 1, ds.users[0].items[:3], 4))  # second line of user 0, cut at p=2
    data = training_sequences(ds, ds.splits["train"], max_len=12)
    assert data.inputs[0, :4].tolist() == [0, 3, 1, 4]
    assert data.labels[0, :4].tolist() == [3, 1, 4, 1]
    assert data.extra[0, 2] == -1  # label at p=2 is already item 4
    data = training_sequences(ds, ds.splits["train"], max_len=2)
    assert data.inputs[0].tolist() == [1, 4] and data.labels[0].tolist() == [4, 1]


def test_config_out_of_range_is_refused():
    with pytest.raises(ValueError, match="dropout"):
        DualGraphConfig(dropout=1.5).validate()
    with pytest.raises(ValueError, match="dim"):
        DualGraphModel(DualGraphConfig(dim=15, n_heads=2), torch.zeros(3, dtype=torch.long), None)
    with pytest.raises(ValueError, match="select_metric"):
        FitConfig(select_metric="AUC").validate()


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic?n_users=300")


@pytest.mark.parametrize("negatives, ratio", [(0, 0.8), (16, 0.95)])
def test_losses_decrease_on_synthetic_data(synthetic, negatives, ratio):
    torch.manual_seed(0)
    model = model_for(synthetic, DualGraphConfig(**TINY, negatives=negatives))
    data = training_sequences(synthetic, synthetic.splits["train"], 12)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def full_softmax_losses():  # measured the same way before and after, whatever `negatives`
        model.cfg.negatives, kept = 0, model.cfg.negatives
        torch.manual_seed(1)
        out = {k: float(v.detach()) for k, v in model.losses(data.inputs, data.labels, data.extra).items()}
        model.cfg.negatives = kept
        return out

    first = full_softmax_losses()
    for _ in range(60):
        losses = model.losses(data.inputs, data.labels, data.extra)
        opt.zero_grad()
        losses["total"].backward()
        opt.step()
    last = full_softmax_losses()
    assert set(first) == {"ce", "infomax", "align", "total"}
    assert last["ce"] < ratio * first["ce"]
    assert last["total"] < first["total"]


def test_tiny_end_to_end_beats_popularity_and_handles_unseen_items(synthetic):
    torch.manual_seed(0)
    model = model_for(synthetic, DualGraphConfig(**TINY))
    result = fit(model, synthetic, FitConfig(epochs=12, batch_size=16, lr=5e-3, patience=12, progress=False))
    assert 1 <= result.best_epoch <= 12 and len(result.history) >= result.best_epoch
    scorer = SequenceScorer(model)
    test = evaluate(scorer, synthetic, "test")
    pop = evaluate(Popularity(synthetic, synthetic.splits["train"]), synthetic, "test")
    for part in ("overall", "art", "office"):
        assert all(0.0 <= v <= 1.0 for k, v in test[part].items() if k != "n")
    assert test["n_test_lines"] == len(synthetic.splits["test"])
    assert test["overall"]["HR@10"] > pop["overall"]["HR@10"] + 0.15
    ranks, _, top = rank_examples(scorer, synthetic, synthetic.splits["test"][:5], top_n=7)
    assert top.shape == (5, 7) and all(synthetic.item_domain[top[i]].tolist() == [ex.domain] * 7
                                         for i, ex in enumerate(synthetic.splits["test"][:5]))


def test_same_seed_same_numbers(synthetic):
    def run():
        torch.manual_seed(1)
        model = model_for(synthetic, DualGraphConfig(**TINY))
        fit(model, synthetic, FitConfig(epochs=2, batch_size=32, progress=False, seed=3))
        return evaluate(SequenceScorer(model), synthetic, "test")["overall"]

    assert run() == run()


def test_ablation_and_sasrec_switch_parts_off(synthetic):
    abl = model_for(synthetic, ablation_config(**TINY))
    sas = model_for(synthetic, sasrec_config(**TINY))
    data = training_sequences(synthetic, synthetic.splits["train"], 12)
    assert set(abl.losses(data.inputs, data.labels, data.extra)) == {"ce", "infomax", "total"}
    assert set(sas.losses(data.inputs, data.labels, data.extra)) == {"ce", "total"}
    assert sas.domain_encoder is None


def test_export_writes_vectors_rankings_and_reloadable_weights(synthetic, tmp_path):
    from safetensors.torch import load_file

    from urllm.models.export import export_stage1, load_model, save_model

    torch.manual_seed(0)
    model = model_for(synthetic, DualGraphConfig(**TINY))
    fit(model, synthetic, FitConfig(epochs=1, batch_size=32, progress=False))
    save_model(model, tmp_path, "dual_graph")
    (tmp_path / "dual_graph.json").write_text("{}")  # the pipeline's metrics file of that name must not matter
    export_stage1(model, synthetic, tmp_path, top_n=50)
    vectors = load_file(tmp_path / "stage1_vectors.safetensors")
    for split in ("train", "valid", "test"):
        assert vectors[f"users_{split}"].shape == (len(synthetic.splits[split]), 2, 16)
        assert vectors[f"users_mixed_{split}"].shape == (len(synthetic.splits[split]), 16)
    assert vectors["items"].shape == (synthetic.n_items, 16)
    rankings = load_file(tmp_path / "stage1_rankings.safetensors")
    top = rankings["test_top"]
    assert top.shape == (len(synthetic.splits["test"]), 50)
    assert rankings["valid_top"].shape == (len(synthetic.splits["valid"]), 50)  # the pipeline's fusion is tuned on valid
    assert (top[:, 40:] == -1).all()  # a domain has 40 items: the rest is marked empty
    ex = synthetic.splits["test"][0]
    assert set(top[0, :40].tolist()) == set(synthetic.items_of(ex.domain).tolist())
    reloaded = load_model(tmp_path, "dual_graph", torch.from_numpy(synthetic.item_domain), model.graphs)
    scores = SequenceScorer(reloaded).scores([ex.history], ex.domain)[0]
    assert synthetic.items_of(ex.domain)[int(scores.argmax())] == top[0, 0]
    assert not list(tmp_path.glob(".*.tmp"))


def test_user_with_one_domain_only_gets_finite_vectors_for_both_domains():
    torch.manual_seed(0)
    model = model_for(hand_dataset(), DualGraphConfig(**TINY)).eval()
    scorer = SequenceScorer(model)
    only_a = np.array([0, 1, 2, 0])
    vectors = scorer.vectors([only_a])
    assert torch.isfinite(vectors).all()
    # no B item: the B thread contributes nothing, so the B vector is the mixed state alone
    _, mixed = scorer.vectors([only_a], with_mixed=True)
    assert torch.allclose(vectors[0, 1], mixed[0], atol=1e-6)
    assert torch.isfinite(scorer.scores([only_a], 1)).all()


def test_sasrec_alone_learns_the_sequences(synthetic):
    """The transformer threads on their own (no graphs, no readout) must learn: position
    embeddings at the items' scale, not nn.Embedding's N(0, 1) that drowned the items."""
    torch.manual_seed(0)
    model = model_for(synthetic, sasrec_config(**TINY))
    assert model.mixed_encoder.pos.weight.std() < 0.1
    fit(model, synthetic, FitConfig(epochs=12, batch_size=16, lr=5e-3, patience=12, progress=False))
    test = evaluate(SequenceScorer(model), synthetic, "test")
    pop = evaluate(Popularity(synthetic, synthetic.splits["train"]), synthetic, "test")
    assert test["overall"]["HR@10"] > pop["overall"]["HR@10"] + 0.15
