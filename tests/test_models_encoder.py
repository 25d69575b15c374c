"""The pieces both tri-thread models share (urllm/models/encoder.py): domain threads, the
label groups and the full / sampled next-item losses."""
import pytest
import torch

from urllm.models.config import DualGraphConfig
from urllm.models.encoder import (
    CausalEncoder,
    domain_subsequence,
    domain_thread_states,
    full_softmax_loss,
    label_groups,
    last_states,
    sampled_softmax_loss,
)

PAD = 6
ITEM_DOMAIN = torch.tensor([0, 0, 0, 1, 1, 1, -1])  # items 0-2 in A, 3-5 in B, row 6: pad


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    yield


def test_domain_subsequence_on_a_hand_made_batch():
    seq = torch.tensor([[3, 0, 4, 1, PAD], [0, 1, 2, PAD, PAD]])
    sub, last = domain_subsequence(seq, ITEM_DOMAIN[seq] == 1, PAD)
    assert sub.tolist() == [[3, 4], [PAD, PAD]]  # B items in order, pad after; width = most B items of a row
    assert last.tolist() == [[0, 0, 1, 1, 1], [-1, -1, -1, -1, -1]]


def test_domain_thread_reads_the_last_in_domain_item_and_ignores_the_other_domain():
    torch.manual_seed(0)
    encoder = CausalEncoder(DualGraphConfig(dim=8, n_heads=2, n_blocks=1, dropout=0.0, max_len=6)).eval()
    table = torch.cat([torch.randn(PAD, 8), torch.zeros(1, 8)])
    seq = torch.tensor([[0, 3, 1, 4, PAD]])
    other_a_items = torch.tensor([[2, 3, 0, 4, PAD]])  # same B items, different A items
    with torch.no_grad():
        states = domain_thread_states(encoder, table, seq, ITEM_DOMAIN[seq] == 1, PAD)
        again = domain_thread_states(encoder, table, other_a_items, ITEM_DOMAIN[other_a_items] == 1, PAD)
        alone = encoder(table[torch.tensor([[3, 4]])])  # the B thread on its own
    assert torch.all(states[0, 0] == 0)  # no B item yet
    assert torch.allclose(states[0, 1], alone[0, 0]) and torch.allclose(states[0, 2], alone[0, 0])
    assert torch.allclose(states[0, 3], alone[0, 1]) and torch.allclose(states[0, 4], alone[0, 1])
    assert torch.allclose(states, again)
    assert torch.equal(last_states(states, torch.tensor([2])), states[0, 1:2])


def test_label_groups_come_labels_then_extra_and_domain_a_then_b():
    labels = torch.tensor([[1, 4, -1]])
    extra = torch.tensor([[-1, -1, 5]])
    groups = [(targets is extra, d, hit.tolist()) for targets, d, hit in label_groups(labels, extra, ITEM_DOMAIN)]
    assert groups == [(False, 0, [[True, False, False]]), (False, 1, [[False, True, False]]),
                      (True, 1, [[False, False, True]])]  # extra has no A label: no group


def test_sampled_loss_masks_the_target_and_matches_the_full_loss_over_every_item():
    torch.manual_seed(0)
    table = torch.randn(PAD + 1, 4)
    states = torch.randn(3, 4)
    targets = torch.tensor([0, 2, 2])
    items = torch.tensor([0, 1, 2])  # domain A; every target is also among the negatives
    full = full_softmax_loss(states, table, items, targets)  # columns = item ids here
    by_hand = -torch.log_softmax(states @ table[items].T, 1)[torch.arange(3), targets].sum()
    assert torch.allclose(full, by_hand)
    assert torch.allclose(sampled_softmax_loss(states, table, targets, items), full)
    bonus = torch.randn(3, 3)
    positive_bonus = bonus[torch.arange(3), targets]
    assert torch.allclose(sampled_softmax_loss(states, table, targets, items, (positive_bonus, bonus)),
                          full_softmax_loss(states, table, items, targets, bonus))
    # a sampled subset: each position's target against the same two negatives
    negatives = torch.tensor([1, 2])
    logits = [torch.stack([table[t] @ s] + [table[n] @ s for n in negatives if n != t]) for s, t in zip(states, targets)]
    expected = sum(-torch.log_softmax(row, 0)[0] for row in logits)
    assert torch.allclose(sampled_softmax_loss(states, table, targets, negatives), expected)
