"""The statistics module on known cases: intervals, paired tests, the common line set."""
import numpy as np
import pytest

from urllm.stats import bootstrap_ci, common_lines, compare, line_values, paired_test


def test_line_values_match_the_metric_definitions():
    v = line_values([1, 3, 30, np.inf])
    assert v["HR@1"].tolist() == [1, 0, 0, 0] and v["HR@5"].tolist() == [1, 1, 0, 0]
    assert v["MRR"].tolist() == pytest.approx([1, 1 / 3, 1 / 30, 0])
    assert v["NDCG@5"][1] == pytest.approx(1 / np.log2(4)) and v["NDCG@20"][2] == 0


def test_constant_metric_gives_zero_width_interval():
    ci = bootstrap_ci(line_values(np.full(50, 4.0)))
    assert ci["HR@5"] == (1.0, 1.0) and ci["HR@1"] == (0.0, 0.0)
    assert ci["MRR"][0] == pytest.approx(0.25) and ci["MRR"][1] == pytest.approx(0.25)


def test_interval_covers_the_mean_and_shrinks_with_more_lines():
    rng = np.random.default_rng(1)
    small = line_values(rng.integers(1, 40, 100))
    large = line_values(rng.integers(1, 40, 2000))
    for values in (small, large):
        lo, hi = bootstrap_ci(values)["HR@10"]
        assert lo < values["HR@10"].mean() < hi
    width = lambda v: np.subtract(*bootstrap_ci(v)["HR@10"][::-1])  # noqa: E731
    assert width(large) < width(small) / 2


def test_same_seed_same_interval_other_seed_other_resamples():
    values = line_values(np.random.default_rng(2).integers(1, 30, 300))
    assert bootstrap_ci(values, seed=7) == bootstrap_ci(values, seed=7)
    assert bootstrap_ci(values, seed=7) != bootstrap_ci(values, seed=8)


def test_identical_methods_give_delta_zero_and_p_one():
    values = line_values(np.random.default_rng(3).integers(1, 50, 400))
    for t in paired_test(values, values).values():
        assert t["delta"] == 0.0 and t["p"] == 1.0 and t["ci95"] == [0.0, 0.0]


def test_clearly_better_method_is_significant_and_a_tiny_edge_is_not():
    rng = np.random.default_rng(4)
    base = rng.integers(1, 60, 500).astype(float)
    better = np.maximum(1, base - rng.integers(0, 10, 500))  # never worse, often better
    t = paired_test(line_values(better), line_values(base))
    assert t["MRR"]["delta"] > 0 and t["MRR"]["p"] < 0.05 and t["MRR"]["ci95"][0] > 0
    one_line = base.copy()
    one_line[0] = 1  # one line moved to the top: not evidence of anything
    assert paired_test(line_values(one_line), line_values(base))["HR@10"]["p"] > 0.3


def test_paired_test_refuses_different_line_counts():
    with pytest.raises(ValueError, match="same lines"):
        paired_test(line_values([1, 2, 3]), line_values([1, 2]))


def test_compare_restricts_every_method_to_the_common_lines():
    ranks = {"dual_graph": np.array([1, 2, 3, 4, 50.0]), "pop": np.array([5, 5, 5, 5, 5.0]),
             "urllm": np.array([1, np.nan, 2, np.nan, 1.0])}
    assert common_lines(ranks).tolist() == [True, False, True, False, True]
    table = compare(ranks, np.array([0, 1, 0, 1, 1]), ("a", "b"))
    for method, m in table.items():
        assert m["lines"] == {"set": "test", "n": 3, "of": 5} and m["overall"]["n"] == 3
        assert set(m["overall"]["ci95"]) == set(m["overall"]["vs_dual_graph"]) >= {"HR@1", "MRR"}
        assert m["a"]["n"] == 2 and m["b"]["n"] == 1
    assert table["dual_graph"]["overall"]["vs_dual_graph"]["MRR"] == {"delta": 0.0, "p": 1.0, "ci95": [0.0, 0.0]}
    assert table["urllm"]["overall"]["HR@1"] == pytest.approx(2 / 3)
    assert table["urllm"]["overall"]["vs_dual_graph"]["HR@1"]["delta"] == pytest.approx(1 / 3)
