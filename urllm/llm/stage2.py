"""URLLM stage 2 end to end: retrieve neighbour users, assemble prompts, fine-tune the
LLM with LoRA, generate every variant for a seeded sample of test lines, and score them.

Inputs are stage 1's exports (urllm/models/export.py): the domain-specific user vectors
and each test line's dual-graph top-N. Lists are scored by the target's position in
the top-K list (absent: a miss), so MRR here is MRR@K; the dual-graph ranking is scored
the same way on the same lines, so every row of the table compares like with like.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from urllm.data.dataset import Dataset
from urllm.llm.finetune import LoraTrainConfig, TrainExample, encode_example
from urllm.llm.generate import VARIANTS, GenerationConfig, Generator
from urllm.llm.prompt import PromptBuilder, PromptConfig, answer_text
from urllm.metrics import summarize
from urllm.retrieval import RetrievalConfig, build_domain_indexes


@dataclass
class Stage2Config:
    k: int = 1  # neighbours shown in evaluation prompts (0: none)
    train_lines: int = 200  # training lines turned into LoRA examples (seeded sample)
    eval_lines: int = 100  # test lines generated for (seeded sample, the same for every variant)
    seed: int = 0
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    lora: LoraTrainConfig = field(default_factory=LoraTrainConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)


class Neighbours:
    """Top-k training users per line and target domain, from stage 1's user vectors."""

    def __init__(self, dataset: Dataset, vectors: dict[str, torch.Tensor], cfg: RetrievalConfig):
        self.dataset, self.vectors, self.cfg = dataset, vectors, cfg
        train_users = [ex.user for ex in dataset.splits["train"]]
        table = vectors["users_train"] if cfg.vector == "domain" else vectors["users_mixed_train"]
        self.indexes = build_domain_indexes(table, train_users, cfg)

    def query(self, split: str, line: int, k: int) -> list[tuple[int, float]]:
        """(user index, score) of the k nearest training users, the line's user excluded."""
        if k == 0:
            return []
        ex = self.dataset.splits[split][line]
        if self.cfg.vector == "domain":
            q = self.vectors[f"users_{split}"][line, ex.domain]
        else:
            q = self.vectors[f"users_mixed_{split}"][line]
        scores, users = self.indexes[ex.domain].search(q.view(1, -1).numpy(), k, exclude=np.array([ex.user]))
        return [(int(u), float(s)) for u, s in zip(users[0], scores[0]) if u >= 0]

    def sequences(self, neighbours: list[tuple[int, float]]) -> list[np.ndarray]:
        return [self.dataset.users[u].items for u, _ in neighbours]


def sample_lines(n_total: int, n: int, seed: int) -> list[int]:
    if n >= n_total:
        return list(range(n_total))
    return sorted(np.random.default_rng(seed).choice(n_total, n, replace=False).tolist())


def training_examples(dataset: Dataset, builder: PromptBuilder, neighbours: Neighbours, cfg: Stage2Config) -> list[TrainExample]:
    """LoRA examples: each sampled training line with its nearest neighbour (never the user)."""
    out = []
    for line in sample_lines(len(dataset.splits["train"]), cfg.train_lines, cfg.seed):
        ex = dataset.splits["train"][line]
        prompt = builder.build(ex.history, ex.domain, neighbours.sequences(neighbours.query("train", line, 1)))
        out.append(encode_example(builder.tokenizer, prompt.text, answer_text(dataset, ex.target)))
    return out


@dataclass
class LineResult:
    line: int
    neighbours: list[tuple[int, float]]
    prompt_tokens: dict[str, int]
    prompt_sections: dict[str, str]
    generations: dict  # variant -> Generation


def evaluate_lines(
    dataset: Dataset,
    generator: Generator,
    builder: PromptBuilder,
    neighbours: Neighbours,
    test_top: torch.Tensor,
    lines: list[int],
    k: int,
    variants=VARIANTS,
    progress=None,
) -> tuple[dict, list[LineResult]]:
    """Metrics of every variant (and of the dual-graph list) on the given test lines."""
    test = dataset.splits["test"]
    results = []
    for line in progress(lines) if progress else lines:
        ex = test[line]
        nbrs = neighbours.query("test", line, k)
        prompt = builder.build(ex.history, ex.domain, neighbours.sequences(nbrs))
        ranking = [int(i) for i in test_top[line] if i >= 0]
        results.append(LineResult(line, nbrs, prompt.tokens, prompt.sections, generator.run(prompt.text, ex.domain, ranking, variants)))
    return score_results(dataset, results, test_top, generator.cfg.top_k), results


def _rank_in(ranking: list[int], target: int) -> float:
    return float(ranking.index(target) + 1) if target in ranking else float("inf")


def score_results(dataset: Dataset, results: list[LineResult], test_top: torch.Tensor, top_k: int) -> dict:
    test = dataset.splits["test"]
    domains = np.array([test[r.line].domain for r in results])
    out = {}
    dual = [_rank_in([int(i) for i in test_top[r.line][:top_k]], test[r.line].target) for r in results]
    out["dual_graph"] = summarize(np.array(dual), domains, dataset.domains)
    variants = results[0].generations.keys() if results else []
    for v in variants:
        ranks = np.array([_rank_in(r.generations[v].ranking, test[r.line].target) for r in results])
        metrics = summarize(ranks, domains, dataset.domains)
        outputs = [o for r in results for o in r.generations[v].outputs]
        n = max(1, len(outputs))
        metrics["overall"] |= {
            "ood_rate": sum(o.valid and not o.in_domain for o in outputs) / n,
            "valid_rate": sum(o.valid for o in outputs) / n,
            "dup_rate": sum(o.duplicate for o in outputs) / n,
        }
        if v == "refined":
            metrics["overall"]["fallback_rate"] = sum(r.generations[v].fell_back for r in results) / max(1, len(results))
        out[f"urllm_{v}"] = metrics
    return out
