"""RSLLM as a method of a run: its examples built from the run's stage-1 exports, its
two-stage fine-tune, its evaluation on the same test lines as URLLM's variants, and
the files it leaves (urllm/methods/rsllm.py holds the method's building blocks).

    result = train_and_evaluate(dataset, base_model, tokenizer, vectors, test_top, lines, cfg)
    save(result, run_dir / "rsllm")           # adapter, projectors, training.json
    model, projector, report = load(base_model, run_dir / "rsllm")

The recommender whose ID embeddings become soft tokens is the run's dual-graph model:
`stage1_vectors.safetensors` holds its mixed item table (`items`) and, per training
line, its user vector for the target domain (loss (b)). RSLLM's prompts carry the
user's own history only (no retrieved neighbours: the method has none). Its answers are
beam-searched inside the target domain's title trie, then completed from the
dual-graph ranking, the same protocol as URLLM's `constrained` variant, so the two
compare like with like.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from urllm.data.dataset import Dataset
from urllm.io import atomic_save_tensors, atomic_write_json
from urllm.llm.beam import beam_searches
from urllm.llm.finetune import LoraTrainConfig, add_lora, encode_example, load_adapter, save_adapter
from urllm.llm.generate import GenerationConfig, Generator, complete, flag_outputs, for_generation
from urllm.llm.prompt import PromptBuilder, PromptConfig, answer_text
from urllm.methods.rsllm import (
    Projector,
    RSLLMConfig,
    build_soft_prompt,
    choose_placeholder,
    encode_unified,
    soft_prompt_search,
    title_token_ids,
    train_rsllm,
)
from urllm.methods.urllm_stage2 import answer_rates, batches, sample_lines
from urllm.metrics import rank_in_list
from urllm.stats import summarize_with_stats

PROJECTORS = "projectors.safetensors"


@dataclass
class RSLLMRunConfig:
    """What a run's RSLLM stage reads: the method's own settings and the run's shared ones."""
    method: RSLLMConfig = field(default_factory=RSLLMConfig)
    lora: LoraTrainConfig = field(default_factory=LoraTrainConfig)  # r, alpha, dropout, targets (steps: the method's)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    train_lines: int = 200
    seed: int = 0


@dataclass
class RSLLMResult:
    model: object  # the LoRA-wrapped LM, in eval mode (generation dtype)
    projector: Projector
    user_projector: Projector
    report: dict
    metrics: dict
    records: dict[str, dict]  # test line -> {"ranking", "outputs", "tokens", "soft_tokens"}


def training_examples(dataset: Dataset, builder: PromptBuilder, vectors: dict[str, torch.Tensor], cfg: RSLLMRunConfig,
                      placeholder: str):
    """(text-only examples, unified examples) of the same seeded training lines."""
    tok = builder.tokenizer
    text_only, unified = [], []
    for line in sample_lines(len(dataset.splits["train"]), cfg.train_lines, cfg.seed):
        ex = dataset.splits["train"][line]
        answer = answer_text(dataset, ex.target)
        text_only.append(encode_example(tok, builder.build(ex.history, ex.domain).text, answer))
        soft = build_soft_prompt(builder, ex.history, ex.domain, placeholder=placeholder)
        unified.append(encode_unified(tok, soft, answer, ex.target, vectors["users_train"][line, ex.domain]))
    return text_only, unified


def _projectors(id_dim: int, llm_dim: int) -> tuple[Projector, Projector]:
    return Projector(id_dim, llm_dim), Projector(id_dim, llm_dim)


def train_and_evaluate(dataset: Dataset, model, tokenizer, vectors: dict[str, torch.Tensor], test_top: torch.Tensor,
                       lines: list[int], cfg: RSLLMRunConfig, progress=None, ranker=None) -> RSLLMResult:
    """Fine-tune RSLLM on `model` (a fresh base LM, wrapped with LoRA here) and score it on
    the test `lines` against the dual-graph lists `test_top` (full ranks with `ranker`,
    an evaluation.CompletedRanks)."""
    from urllm.seed import seed_everything

    seed_everything(cfg.seed)
    device = model.get_input_embeddings().weight.device
    builder = PromptBuilder(dataset, tokenizer, cfg.prompt)
    placeholder = choose_placeholder(tokenizer)
    text_only, unified = training_examples(dataset, builder, vectors, cfg, placeholder)
    id_table = vectors["items"].float().to(device)
    projector, user_projector = (p.to(device) for p in _projectors(id_table.shape[1], model.get_input_embeddings().embedding_dim))
    peft_model = add_lora(model, dataclasses.replace(cfg.lora, seed=cfg.seed))
    method = dataclasses.replace(cfg.method, seed=cfg.seed)
    report = train_rsllm(peft_model, tokenizer, projector, text_only, unified, method, id_table=id_table,
                         title_ids=title_token_ids(tokenizer, dataset.item_titles), user_projector=user_projector)
    report |= {"placeholder": placeholder, "id_dim": id_table.shape[1], "llm_dim": projector.llm_dim,
               "examples": len(unified)}
    result = RSLLMResult(peft_model, projector, user_projector, report, {}, {})
    start = time.perf_counter()
    result.metrics, result.records = evaluate(dataset, result, tokenizer, vectors, test_top, lines, cfg, placeholder, progress,
                                              ranker)
    result.report["eval_s"] = round(time.perf_counter() - start, 1)
    return result


def evaluate(dataset: Dataset, result: RSLLMResult, tokenizer, vectors: dict[str, torch.Tensor], test_top: torch.Tensor,
             lines: list[int], cfg: RSLLMRunConfig, placeholder: str, progress=None, ranker=None) -> tuple[dict, dict]:
    """Constrained generation after each line's soft prompt; metrics as URLLM's variants
    (full ranks with `ranker`, else ranks in the top_k list; intervals and the paired
    difference to the dual-graph list; ood/valid/dup rates) and one record per line
    (with "rank", the target's rank)."""
    gen = cfg.generation
    model = result.model
    if gen.merge_adapter and hasattr(model, "merge_adapter"):
        # folded in place (peft merge_adapter, not merge_and_unload): each forward skips the
        # LoRA branch, and the adapter's own weights stay in the wrapper for `save`
        model.merge_adapter()
    model = for_generation(model, dataclasses.replace(gen, merge_adapter=False))
    generator = Generator(model, tokenizer, dataset, gen)  # for its per-domain title tries
    builder = PromptBuilder(dataset, tokenizer, cfg.prompt)
    id_table = vectors["items"].to(model.get_input_embeddings().weight.device)
    examples = dataset.splits["test"]
    ranks, dual_ranks, domains, outputs, records = [], [], [], [], {}
    if ranker is not None:
        ranker.prepare(lines)

    def rank(line: int, ranking: list[int]) -> float:
        if ranker is not None:
            return float(ranker.rank(line, ranking))
        return rank_in_list(ranking, examples[line].target)

    for chunk in batches(lines, gen.batch_lines, progress):
        softs = [build_soft_prompt(builder, examples[line].history, examples[line].domain, placeholder=placeholder)
                 for line in chunk]
        searches = [soft_prompt_search(model, result.projector, id_table, soft, tokenizer.eos_token_id,
                                       generator.domain_trie(examples[line].domain), gen.num_beams, gen.max_new_tokens,
                                       gen.length_penalty) for line, soft in zip(chunk, softs)]
        for line, soft, hyps in zip(chunk, softs, beam_searches(model, searches, batched=gen.batch_lines > 1)):
            ex = examples[line]
            texts = [tokenizer.decode(h.tokens, skip_special_tokens=True).strip() for h in hyps]
            items = [h.items[0] if h.items else None for h in hyps]
            flagged = flag_outputs(texts, items, dataset.item_domain, ex.domain)
            dual = [int(i) for i in test_top[line] if i >= 0]
            ranking = complete(items, dual, gen.top_k)
            ranks.append(rank(line, ranking))
            dual_ranks.append(rank(line, dual[: gen.top_k]))
            domains.append(ex.domain)
            outputs += flagged
            records[str(line)] = {"ranking": ranking, "fell_back": False, "outputs": [dataclasses.asdict(o) for o in flagged],
                                  "tokens": soft.prompt.tokens, "soft_tokens": len(soft.soft_positions), "rank": ranks[-1]}
    metrics = summarize_with_stats(np.array(ranks, dtype=float), np.array(domains), dataset.domains,
                                   np.array(dual_ranks, dtype=float), cfg.seed)
    metrics["overall"] |= answer_rates(outputs)
    return metrics, records


def save(result: RSLLMResult, out_dir: Path) -> list[Path]:
    """The adapter (peft save_pretrained, with training.json), then the projectors beside it."""
    out_dir = Path(out_dir)
    save_adapter(result.model, out_dir, result.report)
    tensors = {f"item.{k}": v.detach().float().cpu().contiguous() for k, v in result.projector.state_dict().items()}
    tensors |= {f"user.{k}": v.detach().float().cpu().contiguous() for k, v in result.user_projector.state_dict().items()}
    atomic_save_tensors(out_dir / PROJECTORS, tensors)
    return sorted(p for p in out_dir.rglob("*") if p.is_file())


def load_item_projector(run_subdir: Path) -> tuple[Projector, dict]:
    """(item projector in eval mode, training report) from a folder `save` wrote; no LM needed."""
    from safetensors.torch import load_file

    run_subdir = Path(run_subdir)
    path = run_subdir / PROJECTORS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (the RSLLM stage did not finish)")
    report = json.loads((run_subdir / "training.json").read_text())
    projector, _ = _projectors(report["id_dim"], report["llm_dim"])
    tensors = load_file(path)
    projector.load_state_dict({k.removeprefix("item."): v for k, v in tensors.items() if k.startswith("item.")})
    return projector.eval(), report


def load(base_model, run_subdir: Path):
    """(LoRA-wrapped model, item projector, report) from a folder `save` wrote."""
    projector, report = load_item_projector(run_subdir)
    return load_adapter(base_model, Path(run_subdir)), projector, report


def write_results(path: Path, lines: list[int], result: RSLLMResult) -> None:
    ranks = [result.records[str(line)]["rank"] for line in lines]
    atomic_write_json(path, {"lines": lines, "metrics": result.metrics, "ranks": ranks, "records": result.records})
