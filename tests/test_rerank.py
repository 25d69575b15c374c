"""URLLM's LLM re-ranker (urllm/methods/rerank.py): the fusion, the weight chosen on valid,
calibration, and the scoring of a split's lines on the tiny random LM."""
import dataclasses

import numpy as np
import pytest
import torch

from urllm.llm.candidate_scores import answer_ids, score_many
from urllm.llm.config import RerankConfig
from urllm.llm.prompt import PromptBuilder, PromptConfig
from urllm.methods.rerank import ScoredLines, TitleScorer, choose_weight, fused_ranking, rankings, score_lines, standardise


def test_standardise_centres_and_scales_and_keeps_a_constant_at_zero():
    z = standardise(np.array([1.0, 2.0, 3.0, 6.0]))
    assert abs(z.mean()) < 1e-12 and abs(z.std() - 1) < 1e-12
    assert standardise(np.array([4.0, 4.0])).tolist() == [0.0, 0.0]
    assert standardise(np.zeros(0)).shape == (0,)


def test_weight_zero_is_the_dual_graph_order_and_a_large_weight_the_llm_order():
    candidates = [10, 11, 12, 13]
    dual = np.array([4.0, 3.0, 2.0, 1.0])
    llm = np.array([-3.0, -1.0, -2.0, -0.5])
    assert fused_ranking(candidates, dual, llm, 0.0) == candidates
    assert fused_ranking(candidates, dual, llm, 100.0) == [13, 11, 12, 10]
    # in between, both count: item 11 (2nd by dual, 2nd by LLM) rises above item 10 (1st by dual, last by LLM)
    mid = fused_ranking(candidates, dual, llm, 1.0)
    assert mid.index(11) < mid.index(10) and sorted(mid) == sorted(candidates)


def test_ties_keep_the_dual_graph_order():
    assert fused_ranking([5, 6, 7], np.array([1.0, 1.0, 1.0]), np.array([0.0, 0.0, 0.0]), 2.0) == [5, 6, 7]


def scored_valid(ds, llm_points_at_target: bool) -> ScoredLines:
    """Valid lines whose target is the dual-graph's 3rd candidate; the LLM scores the target
    highest (a helpful LLM) or lowest (a harmful one)."""
    lines, cands, duals, llms = [], [], [], []
    for line, ex in enumerate(ds.splits["valid"][:20]):
        others = [i for i in ds.items_of(ex.domain).tolist() if i != ex.target][:4]
        c = [others[0], others[1], ex.target, others[2], others[3]]
        llm = np.array([-2.0, -2.0, -1.0 if llm_points_at_target else -5.0, -2.0, -2.0])
        lines.append(line), cands.append(c), duals.append(np.array([5.0, 4.0, 3.0, 2.0, 1.0])), llms.append(llm)
    return ScoredLines("valid", lines, cands, duals, llms, llms, [[] for _ in lines])


def test_choose_weight_takes_the_llm_when_it_helps_and_declines_it_when_it_hurts(ds):
    weight, grid = choose_weight(ds, scored_valid(ds, True), [0.0, 0.5, 2.0])
    assert weight > 0 and grid[str(weight)] == 1.0 and grid["0.0"] == pytest.approx(1 / 3, abs=1e-4)
    weight, grid = choose_weight(ds, scored_valid(ds, False), [0.5, 2.0])
    assert weight == 0.0 and set(grid) == {"0.0", "0.5", "2.0"}  # 0 is always a candidate


class FakeNeighbours:
    def query(self, split, line, k):
        return [(0, 1.0)][:k]

    def sequences(self, nbrs):
        return [np.array([1, 2])] * len(nbrs)


class FakeRanker:
    def scores_of(self, line, items):
        return -np.arange(len(items), dtype=np.float64)


def test_score_lines_scores_each_lines_top_n_with_and_without_calibration(ds, tok, lm):
    builder = PromptBuilder(ds, tok, PromptConfig(max_tokens=1500))
    top = torch.tensor([[int(i) for i in ds.items_of(ex.domain)[:8]] + [-1, -1] for ex in ds.splits["test"][:5]])
    lines = [0, 2, 4]
    raw_cfg = RerankConfig(candidates=6, calibrate=False, batch_lines=2)
    raw = score_lines(TitleScorer(lm, tok, ds, builder, raw_cfg), FakeNeighbours(), top, FakeRanker(), lines, 1)
    cal = score_lines(TitleScorer(lm, tok, ds, builder, dataclasses.replace(raw_cfg, calibrate=True)), FakeNeighbours(),
                      top, FakeRanker(), lines, 1)
    assert raw.lines == lines and all(len(c) == 6 for c in raw.candidates)
    for line, c, scores, nb in zip(lines, raw.candidates, raw.llm, raw.neighbours):
        ex = ds.splits["test"][line]
        prompt = builder.build(ex.history, ex.domain, [np.array([1, 2])]).text
        want = score_many(lm, [(tok(prompt, add_special_tokens=False)["input_ids"],
                                answer_ids(tok, [ds.item_titles[i] for i in c]))])[0]
        np.testing.assert_allclose(scores, want, rtol=1e-4, atol=1e-5)
        assert nb == [(0, 1.0)]
    for line, c, r, cal_scores in zip(lines, cal.candidates, raw.raw, cal.llm):
        ex = ds.splits["test"][line]
        empty = tok(builder.build(np.zeros(0, dtype=np.int64), ex.domain).text, add_special_tokens=False)["input_ids"]
        neutral = score_many(lm, [(empty, answer_ids(tok, [ds.item_titles[i] for i in c]))])[0]
        np.testing.assert_allclose(cal_scores, r - neutral, rtol=1e-4, atol=1e-5)
    assert [list(x) for x in rankings(raw, 0.0)] == raw.candidates
