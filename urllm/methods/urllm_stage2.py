"""URLLM stage 2 end to end: retrieve neighbour users, assemble prompts, fine-tune the
LLM with LoRA, generate every variant for a seeded sample of test lines, and score them.

Inputs are stage 1's exports (urllm/models/export.py): the domain-specific user vectors
and each test line's dual-graph top-N. Lists are scored by the target's position in
the top-K list (absent: a miss), so MRR here is MRR@K; the dual-graph ranking is scored
the same way on the same lines, so every row of the table compares like with like.

The full pipeline ("urllm") is Algorithm 1 followed by a fusion of the LLM's grounded
items with the dual-graph ranking (refine.fuse), its weight chosen on validation lines
(`choose_fusion_weight`). The paper puts the LLM's items first; with a small LLM that
sinks the list below the dual-graph model, and the fusion lets validation decide.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from urllm.data.dataset import Dataset
from urllm.llm.finetune import LoraTrainConfig, TrainExample, encode_example
from urllm.llm.generate import VARIANTS, GenerationConfig, Generator
from urllm.llm.prompt import PromptBuilder, PromptConfig, answer_text
from urllm.llm.refine import fuse
from urllm.methods.retrieval import RetrievalConfig, build_domain_indexes, nearest_users
from urllm.metrics import rank_in_list
from urllm.stats import summarize_with_stats

FUSION_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)  # candidates for the LLM's weight in the pipeline's fusion


@dataclass
class Stage2Config:
    k: int = 1  # neighbours shown in evaluation prompts (0: none)
    train_lines: int = 200  # training lines turned into LoRA examples (seeded sample)
    eval_lines: int = 0  # test lines generated for: 0 = all, else a seeded sample (the same for every variant)
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
        ex = self.dataset.splits[split][line]
        return nearest_users(self.indexes, self.vectors, split, line, ex.domain, ex.user, k, self.cfg.vector)

    def sequences(self, neighbours: list[tuple[int, float]]) -> list[np.ndarray]:
        return [self.dataset.users[u].items for u, _ in neighbours]


def answer_rates(outputs) -> dict[str, float]:
    """Out-of-domain, valid-title and duplicate rates over every beam's flagged answer."""
    n = max(1, len(outputs))
    return {"ood_rate": sum(o.valid and not o.in_domain for o in outputs) / n,
            "valid_rate": sum(o.valid for o in outputs) / n,
            "dup_rate": sum(o.duplicate for o in outputs) / n}


def sample_lines(n_total: int, n: int, seed: int) -> list[int]:
    """`n` line indexes drawn with `seed`, sorted; every line when n is 0 or at least n_total."""
    if n <= 0 or n >= n_total:
        return list(range(n_total))
    return sorted(np.random.default_rng(seed).choice(n_total, n, replace=False).tolist())


def batches(lines: list[int], size: int, progress=None):
    """`lines` in chunks of `size`; `progress` (a tqdm-like factory) is advanced per chunk."""
    bar = progress(lines) if progress else None
    for start in range(0, len(lines), max(1, size)):
        chunk = lines[start : start + max(1, size)]
        yield chunk
        if hasattr(bar, "update"):
            bar.update(len(chunk))
    if hasattr(bar, "close"):
        bar.close()


def training_examples(dataset: Dataset, builder: PromptBuilder, neighbours: Neighbours, cfg: Stage2Config,
                      top_of=None, top_n: int = 20) -> list[TrainExample]:
    """LoRA examples: each sampled training line with its nearest neighbour (never the user).
    With cfg.lora.negatives and `top_of` (training lines -> their dual-graph top items [n, >=
    top_n]), each example also carries that many hard negatives for the ranking loss: a
    seeded draw from its line's dual-graph top-`top_n` without the target."""
    lines = sample_lines(len(dataset.splits["train"]), cfg.train_lines, cfg.seed)
    n_neg = cfg.lora.negatives if top_of is not None else 0
    tops = top_of(lines) if n_neg else None
    rng = np.random.default_rng(cfg.seed)
    out = []
    for row, line in enumerate(lines):
        ex = dataset.splits["train"][line]
        prompt = builder.build(ex.history, ex.domain, neighbours.sequences(neighbours.query("train", line, 1)))
        example = encode_example(builder.tokenizer, prompt.text, answer_text(dataset, ex.target))
        if n_neg:
            pool = [int(i) for i in tops[row][:top_n] if i >= 0 and i != ex.target]
            picked = rng.choice(len(pool), min(n_neg, len(pool)), replace=False) if pool else []
            example.negatives = [encode_example(builder.tokenizer, "", answer_text(dataset, pool[i])).answer_ids
                                 for i in sorted(picked)]
        out.append(example)
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
    top: torch.Tensor,
    lines: list[int],
    k: int,
    variants=VARIANTS,
    progress=None,
    split: str = "test",
    fusion_weight: float | None = None,
    ranker=None,
) -> tuple[dict, list[LineResult]]:
    """Metrics of every variant (and of the dual-graph list `top` of the split) on the
    given lines; with `fusion_weight`, also of the full pipeline ("urllm"). `ranker`
    (evaluation.CompletedRanks) gives full ranks; without it a list ranks only its own items."""
    examples = dataset.splits[split]
    results = []
    for chunk in batches(lines, generator.cfg.batch_lines, progress):
        jobs, meta = [], []
        for line in chunk:
            ex = examples[line]
            nbrs = neighbours.query(split, line, k)
            prompt = builder.build(ex.history, ex.domain, neighbours.sequences(nbrs))
            jobs.append((prompt.text, ex.domain, [int(i) for i in top[line] if i >= 0]))
            meta.append((line, nbrs, prompt))
        for (line, nbrs, prompt), gens in zip(meta, generator.run_many(jobs, variants)):
            results.append(LineResult(line, nbrs, prompt.tokens, prompt.sections, gens))
    return score_results(dataset, results, top, generator.cfg.top_k, split, fusion_weight, ranker), results


def line_ranks(dataset: Dataset, results: list[LineResult], top: torch.Tensor, top_k: int, split: str = "test",
               fusion_weight: float | None = None, ranker=None) -> dict[str, list[float]]:
    """Per method ("dual_graph", "urllm_<variant>", "urllm" with a fusion weight), the
    target's rank on each result's line: full ranks with `ranker`, else its position in
    the top-K list (inf when absent)."""
    examples = dataset.splits[split]

    def rank(r: LineResult, ranking: list[int]) -> float:
        return float(ranker.rank(r.line, ranking)) if ranker is not None else rank_in_list(ranking, examples[r.line].target)

    if ranker is not None:
        ranker.prepare([r.line for r in results])
    out = {"dual_graph": [rank(r, [int(i) for i in top[r.line][:top_k] if i >= 0]) for r in results]}
    for v in results[0].generations if results else []:
        out[f"urllm_{v}"] = [rank(r, r.generations[v].ranking) for r in results]
    if fusion_weight is not None and results and "refined" in results[0].generations:
        out["urllm"] = [rank(r, pipeline_ranking(r, top, fusion_weight, top_k)) for r in results]
    return out


def fused_ranking(dual: list[int], refined, weight: float, top_k: int) -> list[int]:
    """The full URLLM list of a line from its dual-graph ranking and its "refined"
    Generation: Algorithm 1's fallback (the dual-graph ranking) when it fell back, else
    the dual-graph ranking fused with the LLM's grounded items at `weight`. The app's live
    generation calls it too."""
    return dual[:top_k] if refined.fell_back else fuse(dual, refined.extra.get("llm_items", []), weight, top_k)


def pipeline_ranking(result: LineResult, top: torch.Tensor, weight: float, top_k: int) -> list[int]:
    """fused_ranking of an evaluated line, its dual-graph ranking taken from `top`."""
    return fused_ranking([int(i) for i in top[result.line] if i >= 0], result.generations["refined"], weight, top_k)


def choose_fusion_weight(dataset: Dataset, results: list[LineResult], top: torch.Tensor, top_k: int,
                         weights=FUSION_WEIGHTS, split: str = "valid") -> tuple[float, dict[str, float]]:
    """The weight with the best HR@10 (then MRR, then the smaller weight) on `results` of
    VALIDATION lines; weight 0 (the dual-graph ranking) is always a candidate, so the
    pipeline cannot be chosen below the dual-graph model on these lines."""
    examples = dataset.splits[split]
    table, best = {}, None
    for w in sorted({0.0, *map(float, weights)}):
        ranks = np.array([rank_in_list(pipeline_ranking(r, top, w, top_k), examples[r.line].target) for r in results])
        hr, mrr = float((ranks <= 10).mean()) if len(ranks) else 0.0, float((1 / ranks).mean()) if len(ranks) else 0.0
        table[str(w)] = round(hr, 4)
        if best is None or (hr, mrr) > best[1:]:
            best = (w, hr, mrr)
    return best[0], table


def score_results(dataset: Dataset, results: list[LineResult], top: torch.Tensor, top_k: int, split: str = "test",
                  fusion_weight: float | None = None, ranker=None, seed: int = 0) -> dict:
    """Every method of `line_ranks` with its metrics, 95% intervals and paired difference
    to the dual-graph list on the same lines (urllm.stats), plus the LLM answer rates."""
    examples = dataset.splits[split]
    domains = np.array([examples[r.line].domain for r in results])
    ranks = line_ranks(dataset, results, top, top_k, split, fusion_weight, ranker)
    reference = np.array(ranks["dual_graph"])
    out = {m: summarize_with_stats(np.array(r), domains, dataset.domains, reference, seed) for m, r in ranks.items()}
    for v in results[0].generations if results else []:
        overall = out[f"urllm_{v}"]["overall"]
        overall |= answer_rates([o for r in results for o in r.generations[v].outputs])
        if v == "refined":
            overall["fallback_rate"] = sum(r.generations[v].fell_back for r in results) / max(1, len(results))
    if "urllm" in out:
        out["urllm"]["overall"] |= {"fusion_weight": fusion_weight} | {
            m: out["urllm_refined"]["overall"][m] for m in ("ood_rate", "valid_rate", "dup_rate", "fallback_rate")}
    return out
