"""The baselines a reviewer asks for: SASRec tuned on valid with full-softmax CE, the
dual-graph model's readout alone, and rankings with the user's history left out."""
import dataclasses

import numpy as np
import pytest
import torch

from urllm.data import load_dataset
from urllm.models import sasrec as sasrec_module
from urllm.models.config import FitConfig, SASRecConfig
from urllm.models.dual_graph import DualGraphConfig, DualGraphModel
from urllm.models.evaluation import evaluate, rank_examples
from urllm.models.graphs import build_graphs
from urllm.models.popularity import Popularity
from urllm.models.readout import ReadoutOnlyScorer
from urllm.models.sequences import graph_sequences
from urllm.models.trainer import FitResult, SequenceScorer, fit

GRID = SASRecConfig(dims=[16], n_blocks=[1], dropouts=[0.0, 0.3], lrs=[5e-3], max_lens=[12], epochs=10, patience=10,
                    batch_size=16)


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic?n_users=300")


@pytest.fixture(scope="module")
def tuned(synthetic):
    return sasrec_module.tune_sasrec(synthetic, GRID, seed=0, progress=False)


def test_tuned_sasrec_trains_with_full_softmax_and_beats_popularity(synthetic, tuned):
    model, result, report = tuned
    assert model.cfg.negatives == 0 and not model.cfg.use_graph and not model.cfg.domain_encoders and model.readout is None
    test = evaluate(SequenceScorer(model), synthetic, "test")["overall"]
    pop = evaluate(Popularity(synthetic, synthetic.splits["train"]), synthetic, "test")["overall"]
    for metric in ("HR@1", "HR@10", "MRR"):
        assert test[metric] > pop[metric], metric
    assert [{k: p[k] for k in ("dim", "n_blocks", "dropout", "lr", "max_len")} for p in report["grid"]] == GRID.points()
    assert report["chosen"] in GRID.points() and result.best_epoch >= 1


def test_tuned_sasrec_is_deterministic_with_a_seed(synthetic, tuned):
    again = sasrec_module.tune_sasrec(synthetic, GRID, seed=0, progress=False)
    assert [g["valid_MRR"] for g in again[2]["grid"]] == [g["valid_MRR"] for g in tuned[2]["grid"]]
    ranks = [rank_examples(SequenceScorer(m), synthetic, synthetic.splits["test"])[0] for m in (again[0], tuned[0])]
    assert np.array_equal(*ranks)


def test_sasrec_states_are_causal(tuned):
    """A position's state and user vector ignore the items after it."""
    model = tuned[0].eval()
    seq = torch.tensor([[3, 7, 1, 9, 4, 2]])
    changed = seq.clone()
    changed[0, 4:] = torch.tensor([11, 12])
    with torch.no_grad():
        tables = model.item_tables()
        # the user vector after 4 items, with different items present in the tensor after them
        after_4 = [model.user_vectors(s, torch.tensor([4]), tables) for s in (seq, changed)]
        full_a, _ = model.encode(seq, tables)
        full_b, _ = model.encode(changed, tables)
    torch.testing.assert_close(*after_4)
    torch.testing.assert_close(full_a[:, :4], full_b[:, :4])  # the states before the change
    assert not torch.allclose(full_a[:, 4:], full_b[:, 4:])


def test_the_grid_is_chosen_on_valid_even_when_test_disagrees(synthetic, monkeypatch):
    """Point 1 is best on valid and worst on test: the tuner must keep point 1, and it
    never looks at the test split."""
    valid_mrr = [0.1, 0.3]
    calls = []

    def fake_fit(model, dataset, cfg, name, device=None):
        i = len(calls)
        calls.append(cfg.lr)
        scores = {"overall": {"MRR": valid_mrr[i], "HR@10": valid_mrr[i]}}
        return FitResult(best_epoch=1, best_valid=scores, seconds=0.0, history=[])

    monkeypatch.setattr(sasrec_module, "fit", fake_fit)
    broken = dataclasses.replace(synthetic, splits={**synthetic.splits, "test": None})  # any read of test fails
    _, _, report = sasrec_module.tune_sasrec(broken, dataclasses.replace(GRID, dropouts=[0.0, 0.5]), progress=False)
    assert report["chosen"]["dropout"] == 0.5 and [g["valid_MRR"] for g in report["grid"]] == valid_mrr


def test_sasrec_config_rejects_bad_values_by_name():
    with pytest.raises(ValueError, match=r"SASRecConfig.dropouts=\[1.5\]"):
        SASRecConfig(dropouts=[1.5]).validate()
    with pytest.raises(ValueError, match="SASRecConfig.dims"):
        SASRecConfig(dims=[], n_heads=1).validate()


def test_readout_only_scores_follow_the_graph_and_popularity_breaks_ties(synthetic):
    graphs = build_graphs(graph_sequences(synthetic.splits["train"]), synthetic.item_domain, synthetic.item_attributes)
    torch.manual_seed(0)
    model = DualGraphModel(DualGraphConfig(dim=16, n_blocks=1, max_len=12), torch.from_numpy(synthetic.item_domain), graphs)
    fit(model, synthetic, FitConfig(epochs=2, batch_size=32, lr=5e-3, progress=False))
    pop = Popularity(synthetic, synthetic.splits["train"])
    scorer = ReadoutOnlyScorer(model, pop.counts)
    test = evaluate(scorer, synthetic, "test")["overall"]
    assert test["MRR"] > evaluate(pop, synthetic, "test")["overall"]["MRR"]  # transitions carry the synthetic structure
    # an empty history reaches nothing: the ranking is popularity's
    empty = scorer.scores([np.array([], dtype=np.int64)], 0)[0]
    assert torch.equal(torch.argsort(empty, descending=True, stable=True),
                       torch.argsort(pop.scores([np.array([])], 0)[0], descending=True, stable=True))
    assert float(empty.max()) <= ReadoutOnlyScorer.TIE_BREAK
    # the neural threads play no part: changing them leaves the scores unchanged
    before = scorer.scores([ex.history for ex in synthetic.splits["test"][:5]], 1)
    with torch.no_grad():
        model.item_emb.weight.add_(1.0)
    torch.testing.assert_close(scorer.scores([ex.history for ex in synthetic.splits["test"][:5]], 1), before)


def test_excluding_history_drops_the_users_items_and_turns_repeats_into_misses(synthetic):
    pop = Popularity(synthetic, synthetic.splits["train"])
    examples = synthetic.splits["test"][:60]
    kept, domains, _ = rank_examples(pop, synthetic, examples)
    dropped, _, _ = rank_examples(pop, synthetic, examples, exclude_history=True)
    n_domain = np.array([len(synthetic.items_of(d)) for d in domains])
    for ex, k, x, n in zip(examples, kept, dropped, n_domain):
        if ex.target in set(ex.history.tolist()):
            assert x == n  # a repeat ranks last
        else:
            own_above = {int(i) for i in ex.history if synthetic.item_domain[i] == ex.domain
                         and pop.counts[i] >= pop.counts[ex.target]}
            assert x == k - len(own_above)
    assert (dropped <= kept).sum() >= 1
