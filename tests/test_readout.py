"""The graph readout: neighbour tables, hand-computed scores, and own-pair exclusion."""
import torch

from urllm.models.graphs import Graph
from urllm.models.readout import GraphReadout, own_pair_counts, top_neighbors, window_items


def graph_of(pairs_with_counts):
    src, dst, w = [], [], []
    for (a, b), c in pairs_with_counts.items():
        src += [a, b]
        dst += [b, a]
        w += [c, c]
    return Graph(torch.tensor([src, dst]), torch.tensor(w, dtype=torch.float))


def test_top_neighbors_keeps_the_strongest_edges():
    g = graph_of({(0, 1): 5.0, (0, 2): 1.0, (0, 3): 3.0, (2, 3): 2.0})
    nbr, cnt = top_neighbors(g, n_items=4, k=2)
    assert nbr[0].tolist() == [1, 3] and cnt[0].tolist() == [5.0, 3.0]
    assert nbr[1].tolist() == [0, 4] and cnt[1].tolist() == [5.0, 0.0]  # pad id 4, count 0
    assert nbr[4].tolist() == [4, 4]  # the pad row


def test_window_items_look_back():
    seq = torch.tensor([[7, 8, 9]])
    assert window_items(seq, 2, pad=0).tolist() == [[[7, 0], [8, 7], [9, 8]]]


def test_readout_matches_hand_computation():
    g = graph_of({(0, 1): 4.0, (0, 2): 1.0, (1, 2): 2.0})
    r = GraphReadout(g, n_items=3, window=2, neighbors=5)
    with torch.no_grad():
        r.log_alpha.fill_(0.0)  # alpha = 1: raw counts
        r.scale.fill_(1.0)
    w = torch.nn.functional.softplus(r.recency).detach()
    recent = torch.tensor([[0, 1]])  # latest item 0, then item 1
    column = torch.tensor([0, 1, 2, -1])
    scores = r.over_columns(recent, None, column, 3)[0]
    expected = [w[1] * 4.0, w[0] * 4.0, w[0] * 1.0 + w[1] * 2.0]  # item 0 is never its own neighbour
    assert torch.allclose(scores, torch.stack(expected))
    assert torch.allclose(r.at_items(recent, None, torch.tensor([2])), scores[2:])


def test_own_pairs_are_subtracted():
    g = graph_of({(0, 1): 1.0, (0, 2): 3.0})
    r = GraphReadout(g, n_items=3, window=1, neighbors=5)
    recent = torch.tensor([[0]])
    # the user's own sequence holds 0 -> 1 once and 2 -> 0 once
    pair_x, pair_y = torch.tensor([[0, 2]]), torch.tensor([[1, 0]])
    own = r.own_counts(recent, pair_x, pair_y)
    assert r.nbr[0, :2].tolist() == [2, 1]  # strongest first
    assert own[0, 0, :2].tolist() == [1.0, 1.0] and own.sum() == 2.0
    column = torch.tensor([0, 1, 2, -1])
    scores = r.over_columns(recent, own, column, 3)[0].detach()
    assert scores[1] == 0.0  # the only 0-1 transition was the user's own
    assert scores[2] > 0.0  # 0-2 was seen three times, once by this user
    assert own_pair_counts(recent, torch.tensor([[[1, 2]]]), pair_x, pair_y).tolist() == [[[1.0, 1.0]]]


def test_readout_parameters_get_gradients():
    g = graph_of({(0, 1): 2.0, (1, 2): 1.0})
    r = GraphReadout(g, n_items=3, window=2, neighbors=5)
    out = r.over_columns(torch.tensor([[1, 0]]), None, torch.tensor([0, 1, 2, -1]), 3).sum()
    out.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in (r.recency, r.scale, r.log_alpha))


def test_tied_neighbours_are_not_chosen_by_id_order():
    # item 0 has 40 neighbours with the same count: which 5 are kept must not follow id order
    g = graph_of({(0, j): 1.0 for j in range(1, 41)})
    nbr, _ = top_neighbors(g, n_items=41, k=5)
    kept = nbr[0].tolist()
    assert len(set(kept)) == 5 and set(kept) <= set(range(1, 41))
    assert kept != list(range(1, 6)) and kept != list(range(36, 41)) and kept != sorted(kept)
    assert top_neighbors(g, n_items=41, k=5)[0][0].tolist() == kept  # seeded: repeatable
