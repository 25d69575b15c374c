"""URLLM with the LLM as a re-ranker ("urllm_rerank"): each of the dual-graph model's top-N
items is scored by the LoRA-tuned LLM, its title after the line's prompt (retrieved
neighbours + the user's history; urllm/llm/candidate_scores.py), and the two scores fused,
the LLM's weight chosen on validation lines:

    fused(i) = z(dual-graph score of i) + w * z(LLM score of i)

z standardises within a line's candidates, since the two scores live on unrelated scales.
With `calibrate` the LLM score is the title's log-probability after the prompt minus after
a prompt with no history and no neighbours (pointwise mutual information): a title likely
for any user (short, generic) gains nothing from being likely for this one. w = 0 is the
dual-graph order exactly and is always a candidate, so validation can decline the LLM.
Items below the top-N keep their dual-graph order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from urllm.data.dataset import Dataset
from urllm.llm.candidate_scores import answer_ids, score_many
from urllm.llm.config import RerankConfig
from urllm.metrics import rank_in_list


@dataclass
class ScoredLines:
    """Per scored line of a split: its dual-graph top-N and both scores of each."""

    split: str
    lines: list[int]
    candidates: list[list[int]]  # item ids, dual-graph order
    dual: list[np.ndarray]  # the dual-graph model's scores of the candidates
    llm: list[np.ndarray]  # the LLM's (calibrated when asked) mean log-probability per title token
    raw: list[np.ndarray]  # the LLM's score after the line's prompt, uncalibrated
    neighbours: list[list[tuple[int, float]]]


class TitleScorer:
    """Scores candidate titles for prompts with one LM; keeps each title's tokens and, for
    calibration, each title's score after the empty prompt of its domain."""

    def __init__(self, model, tokenizer, dataset: Dataset, builder, cfg: RerankConfig | None = None):
        self.model, self.tokenizer, self.dataset, self.builder = model, tokenizer, dataset, builder
        self.cfg = cfg or RerankConfig()
        self._answers: dict[int, list[int]] = {}
        self._neutral: dict[tuple[int, int], float] = {}

    def answers(self, items: list[int]) -> list[list[int]]:
        todo = [i for i in dict.fromkeys(items) if i not in self._answers]
        for item, ids in zip(todo, answer_ids(self.tokenizer, [self.dataset.item_titles[i] for i in todo])):
            self._answers[item] = ids
        return [self._answers[i] for i in items]

    def prompt_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def neutral(self, domain: int, items: list[int]) -> np.ndarray:
        """Each item's score after the prompt with no history and no neighbours."""
        todo = [i for i in dict.fromkeys(items) if (domain, i) not in self._neutral]
        if todo:
            prompt = self.prompt_ids(self.builder.build(np.zeros(0, dtype=np.int64), domain).text)
            for start in range(0, len(todo), 64):
                chunk = todo[start : start + 64]
                scores = score_many(self.model, [(prompt, self.answers(chunk))])[0]
                self._neutral |= {(domain, i): float(s) for i, s in zip(chunk, scores)}
        return np.array([self._neutral[(domain, i)] for i in items])

    def score(self, prompts: list[tuple[str, int, list[int]]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each (prompt text, target domain, candidates): (score, raw score) per candidate."""
        raw = score_many(self.model, [(self.prompt_ids(text), self.answers(items)) for text, _, items in prompts])
        if not self.cfg.calibrate:
            return [(r, r) for r in raw]
        return [(r - self.neutral(domain, items), r) for r, (_, domain, items) in zip(raw, prompts)]


def score_lines(scorer: TitleScorer, neighbours, top, ranker, lines: list[int], k: int, split: str = "test",
                progress=None) -> ScoredLines:
    """Both scores of each line's dual-graph top-N (`top` [n_lines, >= N] of the split, -1
    padded; `ranker` a CompletedRanks of the split gives the dual-graph scores)."""
    from urllm.methods.urllm_stage2 import batches

    ds, n = scorer.dataset, scorer.cfg.candidates
    out = ScoredLines(split, [], [], [], [], [], [])
    for chunk in batches(lines, scorer.cfg.batch_lines, progress):
        prompts = []
        for line in chunk:
            ex = ds.splits[split][line]
            nbrs = neighbours.query(split, line, k) if k else []
            items = [int(i) for i in top[line][:n] if i >= 0]
            listed = items if scorer.cfg.list_candidates else None
            prompts.append((scorer.builder.build(ex.history, ex.domain, neighbours.sequences(nbrs), listed).text,
                            ex.domain, items))
            out.lines.append(line)
            out.candidates.append(items)
            out.dual.append(ranker.scores_of(line, items))
            out.neighbours.append(nbrs)
        for llm, raw in scorer.score(prompts):
            out.llm.append(llm)
            out.raw.append(raw)
    return out


def standardise(x: np.ndarray) -> np.ndarray:
    """(x - mean) / std; zeros when x is constant (nothing to tell apart)."""
    x = np.asarray(x, dtype=np.float64)
    std = x.std() if len(x) else 0.0
    return (x - x.mean()) / std if std > 1e-12 else np.zeros_like(x)


def fused_ranking(candidates: list[int], dual: np.ndarray, llm: np.ndarray, weight: float) -> list[int]:
    """The candidates by fused score, ties in dual-graph order (a stable sort of a list that
    is in dual-graph order); weight 0 returns them as given."""
    if weight == 0 or not candidates:
        return list(candidates)
    fused = standardise(dual) + weight * standardise(llm)
    return [candidates[i] for i in np.argsort(-fused, kind="stable")]


def rankings(scored: ScoredLines, weight: float) -> list[list[int]]:
    return [fused_ranking(c, d, s, weight) for c, d, s in zip(scored.candidates, scored.dual, scored.llm)]


def choose_weight(dataset: Dataset, scored: ScoredLines, weights) -> tuple[float, dict[str, float]]:
    """The weight with the best MRR over the scored VALIDATION lines (a target outside the
    top-N counts 0; ties go to the smaller weight), and every weight's MRR. Weight 0 is
    always a candidate, so the choice is never below the dual-graph order on these lines."""
    examples = dataset.splits[scored.split]
    targets = [examples[line].target for line in scored.lines]
    grid, best = {}, None
    for w in sorted({0.0, *map(float, weights)}):
        ranks = np.array([rank_in_list(r, t) for r, t in zip(rankings(scored, w), targets)], dtype=np.float64)
        mrr = float((1.0 / ranks).mean()) if len(ranks) else 0.0
        grid[str(w)] = round(mrr, 5)
        if best is None or mrr > best[1]:
            best = (w, mrr)
    return best[0], grid
