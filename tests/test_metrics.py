"""Full-ranking metrics against hand-computed cases."""
import math

import numpy as np
import pytest
import torch

from urllm.metrics import metrics_from_ranks, rank_in_list, rank_of_target, summarize


def test_rank_counts_higher_scores_and_ties_pessimistically():
    scores = torch.tensor(
        [
            [0.9, 0.1, 0.5, 0.3],  # target col 0 is best -> rank 1
            [0.9, 0.1, 0.5, 0.3],  # target col 3: 0.9 and 0.5 above -> rank 3
            [0.2, 0.2, 0.2, 0.2],  # all tied: pessimistic -> rank 4 (worst)
            [0.1, 0.7, 0.7, 0.0],  # target col 2 tied with col 1 -> rank 2
        ]
    )
    ranks = rank_of_target(scores, torch.tensor([0, 3, 1, 2]))
    assert ranks.tolist() == [1, 3, 4, 2]


def test_rank_in_a_list_is_the_1_based_position_or_inf():
    ranking = np.array([7, 3, 9])  # a top-K row as stored (numpy ids)
    assert [rank_in_list(ranking, t) for t in (7, 9, np.int64(3))] == [1.0, 3.0, 2.0]
    assert rank_in_list(ranking, 4) == math.inf and rank_in_list([], 7) == math.inf
    assert metrics_from_ranks(np.array([rank_in_list(ranking, 4)]))["MRR"] == 0.0  # absent: scores 0


def test_metrics_hand_computed():
    m = metrics_from_ranks(np.array([1, 3, 7, 30]))
    assert m["HR@1"] == pytest.approx(0.25)
    assert m["HR@5"] == pytest.approx(0.5)
    assert m["HR@10"] == pytest.approx(0.75)
    assert m["HR@20"] == pytest.approx(0.75)
    assert m["NDCG@5"] == pytest.approx((1 + 1 / math.log2(4)) / 4)
    assert m["NDCG@10"] == pytest.approx((1 + 1 / math.log2(4) + 1 / math.log2(8)) / 4)
    assert m["MRR"] == pytest.approx((1 + 1 / 3 + 1 / 7 + 1 / 30) / 4)


def test_summarize_splits_by_domain_and_counts_lines():
    out = summarize(np.array([1, 2, 50, 1]), np.array([0, 1, 1, 0]), ("art", "office"))
    assert out["n_test_lines"] == 4
    assert out["art"]["n"] == 2 and out["art"]["HR@1"] == 1.0
    assert out["office"]["n"] == 2 and out["office"]["HR@5"] == 0.5
    assert out["overall"]["HR@1"] == 0.5
