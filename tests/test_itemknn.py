"""The item-to-item transition baseline: beats popularity where transitions carry signal,
counts train-split pairs only, is deterministic, and is tuned on the valid split only."""
import numpy as np
import pytest
import torch

from urllm.data import Dataset, Example, User, load_dataset
from urllm.models.config import ItemKNNConfig
from urllm.models.evaluation import evaluate
from urllm.models.itemknn import ItemKNN, transition_matrix, tune_itemknn
from urllm.models.popularity import Popularity


def hand_dataset(splits: dict[str, list[list[int]]], n_per_domain: int = 6) -> Dataset:
    """Items 0..n-1 in domain A, n..2n-1 in B; one user per sequence, whose single line
    predicts the sequence's last item from everything before it."""
    titles = [f"a{i}" for i in range(n_per_domain)] + [f"b{i}" for i in range(n_per_domain, 2 * n_per_domain)]
    domain = np.repeat(np.array([0, 1], dtype=np.int8), n_per_domain)
    users, lines = [], {name: [] for name in ("train", "valid", "test")}
    for name, seqs in splits.items():
        for seq in seqs:
            seq = np.array(seq, dtype=np.int64)
            lines[name].append(Example(len(users), int(domain[seq[-1]]), seq[:-1], int(seq[-1])))
            users.append(User(f"u{len(users)}", seq, np.arange(len(seq))))
    ds = Dataset("hand", ("A", "B"), titles, domain, [()] * len(titles), titles, users, lines)
    ds.validate()
    return ds


def pairs(matrix) -> dict[tuple[int, int], float]:
    coo = matrix.tocoo()
    return {(int(a), int(b)): float(v) for a, b, v in zip(coo.row, coo.col, coo.data)}


def all_scores(model, ds, split):
    return [model.scores([ex.history for ex in ds.splits[split] if ex.domain == d], d) for d in (0, 1)]


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic?n_users=300")


def test_beats_popularity_on_synthetic_data(synthetic):
    model, report = tune_itemknn(synthetic)
    test = evaluate(model, synthetic, "test")["overall"]
    pop = evaluate(Popularity(synthetic, synthetic.splits["train"]), synthetic, "test")["overall"]
    assert test["MRR"] > 1.5 * pop["MRR"] and test["HR@10"] > pop["HR@10"] + 0.1, (test, pop)
    c = ItemKNNConfig()
    assert len(report["grid"]) == len(c.windows) * len(c.recencies) * len(c.cross_weights) * len(c.norms)
    assert report["chosen"] in [{k: p[k] for k in report["chosen"]} for p in report["grid"]]


def test_follows_deterministic_transitions():
    """Users walk one ring of items alternating A, B, A, B: the last item fixes the next."""
    ring = [i // 2 if i % 2 == 0 else 6 + i // 2 for i in range(12)]  # 0, 6, 1, 7, ...
    walk = lambda start, n: [ring[(start + k) % 12] for k in range(n)]  # noqa: E731
    ds = hand_dataset({"train": [walk(s, 5 + s % 4) for s in range(24)],
                       "valid": [walk(s, 6) for s in range(3, 15)], "test": [walk(s, 7) for s in range(5, 17)]})
    model, _ = tune_itemknn(ds)
    assert evaluate(model, ds, "test")["overall"]["MRR"] == 1.0
    assert evaluate(Popularity(ds, ds.splits["train"]), ds, "test")["overall"]["MRR"] < 0.6


def test_pair_weights_and_normalisation():
    ds = hand_dataset({"train": [[0, 6, 1, 7], [0, 6, 8]], "valid": [[2, 9]], "test": [[3, 10]]})
    t = transition_matrix([u.items for u in ds.users[:2]], ds.n_items, 2)
    assert pairs(t) == {(0, 6): 2.0, (6, 1): 1.0, (1, 7): 1.0, (0, 1): 0.5, (6, 7): 0.5, (6, 8): 1.0, (0, 8): 0.5}
    raw = ItemKNN(ds, ds.splits["train"], window=2, norm=0.0)
    shares = ItemKNN(ds, ds.splits["train"], window=2, norm=1.0)
    b = list(ds.items_of(1))
    # from item 0 (out 2.5): 6 gets 2.0, 8 gets 0.5; rows are scaled to a best of 1
    assert raw.scores([np.array([0])], 1)[0, b.index(8)] == pytest.approx(0.25, abs=1e-5)
    # from 6 (out 2.5: 1 to item 1, 0.5 to 7, 1 to 8) and, one step older (recency 0.8), from 0 (out 2.5)
    s = shares.scores([np.array([0, 6])], 1)[0]
    assert s[b.index(8)] > s[b.index(7)] and s[b.index(6)] > 0  # 6: only through item 0


def test_counts_come_from_the_train_split_only():
    train = [[0, 6, 1], [2, 7, 3], [0, 6, 8]]
    valid, test = [[5, 11, 9]], [[4, 10, 2]]  # pairs 5->11, 11->9, 4->10, 10->2 occur nowhere in train
    ds = hand_dataset({"train": train, "valid": valid, "test": test})
    model = ItemKNN(ds, ds.splits["train"], window=1)
    assert set(pairs(model.transitions)) == {(0, 6), (6, 1), (2, 7), (7, 3), (6, 8)}
    assert model.transitions[11, 9] == 0 and model.transitions[10, 2] == 0
    # the same user moved into training would be counted: the check above can fail
    moved = hand_dataset({"train": train + valid, "valid": [], "test": test})
    assert ItemKNN(moved, moved.splits["train"], window=1).transitions[11, 9] == 1.0
    # other valid and test targets: the same counts and the same scores on every line
    changed = hand_dataset({"train": train, "valid": [[5, 11, 7]], "test": [[4, 10, 5]]})
    other = ItemKNN(changed, changed.splits["train"], window=1)
    assert pairs(other.transitions) == pairs(model.transitions)
    for split in ("valid", "test"):
        for d in (0, 1):
            histories = [ex.history for ex in ds.splits[split]]
            assert torch.equal(model.scores(histories, d), other.scores(histories, d))


def test_a_line_is_scored_from_its_own_history_alone(synthetic):
    model = ItemKNN(synthetic, synthetic.splits["train"], window=3, recency=0.8, norm=0.5)
    histories = [ex.history for ex in synthetic.splits["test"][:20]]
    batch = model.scores(histories, 1)
    assert batch.dtype == torch.float32 and batch.shape == (20, len(synthetic.items_of(1)))
    for i in (0, 7, 19):
        assert torch.equal(batch[i], model.scores([histories[i]], 1)[0])
    assert not torch.equal(batch[0], batch[1])


def test_unreached_items_are_ordered_by_popularity(synthetic):
    model = ItemKNN(synthetic, synthetic.splits["train"])
    popularity = Popularity(synthetic, synthetic.splits["train"])
    history = [np.array([], dtype=np.int64)]  # no transition reaches anything
    for d in (0, 1):
        ours, pop = model.scores(history, d)[0], popularity.scores(history, d)[0]
        assert torch.equal(torch.argsort(ours, stable=True), torch.argsort(pop, stable=True))


def test_two_fits_give_identical_scores(synthetic):
    cfg = ItemKNNConfig(windows=(2,), recencies=(0.8,), cross_weights=(0.5,), norms=(0.5,))
    (first, report1), (second, report2) = tune_itemknn(synthetic, cfg), tune_itemknn(synthetic, cfg)
    for a, b in zip(all_scores(first, synthetic, "test"), all_scores(second, synthetic, "test")):
        assert torch.equal(a, b)
    assert report1["grid"] == report2["grid"]


def test_the_grid_is_chosen_on_valid_only():
    """Window 2 links p -> r (through q), window 1 does not. The valid line (history p,
    target r) wants window 2; the test line (history p, target s, the most popular B item,
    first by the prior when nothing is reached) wants window 1."""
    p, q, a2, r, s, b5 = 0, 1, 2, 3, 4, 5
    train = [[p, q, r], [a2, s], [b5, s], [a2, s]]
    ds = hand_dataset({"train": train, "valid": [[p, r]], "test": [[p, s]]}, n_per_domain=3)
    cfg = ItemKNNConfig(windows=(1, 2), recencies=(0.8,), cross_weights=(1.0,), norms=(0.0,))
    model, report = tune_itemknn(ds, cfg)
    assert model.window == 2 and report["chosen"]["window"] == 2
    assert [point["valid_MRR"] for point in report["grid"]] == [pytest.approx(1 / 3, abs=1e-6), 1.0]
    test_mrr = {w: evaluate(ItemKNN(ds, ds.splits["train"], window=w), ds, "test")["overall"]["MRR"] for w in (1, 2)}
    assert test_mrr[1] > test_mrr[2]  # choosing on test would have picked window 1
    assert set(report) >= {"grid", "chosen", "select_metric", "seconds"} and report["select_metric"] == "MRR"


def test_ties_keep_the_first_grid_point():
    ds = hand_dataset({"train": [[0, 6, 1], [2, 7, 3]], "valid": [[4, 8]], "test": [[5, 9]]})
    _, report = tune_itemknn(ds, ItemKNNConfig(windows=(3, 1), recencies=(0.8,), cross_weights=(1.0,), norms=(0.0,)))
    assert report["grid"][0]["valid_MRR"] == report["grid"][1]["valid_MRR"] and report["chosen"]["window"] == 3


@pytest.mark.parametrize("field, value", [("windows", (0,)), ("windows", ()), ("windows", (1.5,)), ("recencies", (1.2,)),
                                          ("cross_weights", (-1.0,)), ("norms", (2.0,)), ("history_len", 0),
                                          ("select_metric", "AUC"), ("batch_size", 0)])
def test_bad_config_values_name_the_field(field, value):
    ItemKNNConfig().validate()
    with pytest.raises(ValueError, match=rf"ItemKNNConfig\.{field}="):
        ItemKNNConfig(**{field: value}).validate()
