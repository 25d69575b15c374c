"""The stages of a run. STAGE_TABLE, at the end of this module, is the one place each stage
is declared: the config sections it reads (dotted paths into RunConfig), the earlier
stages whose files it reads, and its builder. `run_pipeline` (train.py) walks the table in
order. A stage's key hashes its config values, the keys of the stages it reads and
FILES_VERSION, and urllm/pipeline/writer.py reuses the stage while its key and its files
are unchanged. Builders take what they need from a Context (urllm/pipeline/context.py),
which loads each thing on first use: a reused stage loads nothing.

The stages in run order, and the files each writes (besides manifest.json):
  data                 data.json: dataset figures, items, users' sequences, test lines
  pop, itemknn,        <method>.json: test metrics and "test_ranks", the target's full rank on
  sasrec, dual_graph,    every test line; <method>_curve.json: the training curve (sasrec and
  dual_graph_no_graph,   the dual-graph models); itemknn's and sasrec's grids, scored on valid,
  dual_graph_readout_    and the chosen points are in their stage summaries (the manifest).
  only                   dual_graph also writes dual_graph.safetensors/.config.json (the model)
                         and its exports stage1_vectors/stage1_rankings.safetensors
                         (urllm/models/export.py), which the later stages read; the readout-only
                         ablation reads that model
  profiles             profiles.json: LLM4CDSR's hierarchical user profiles (texts, clusters),
                         profile_embeddings.safetensors: the profiled training users' embeddings
  llm4cdsr             llm4cdsr.json, llm4cdsr_curve.json, item_text_*.safetensors (its text
                         embeddings), llm4cdsr_rankings.safetensors (its top-N per test line),
                         llm4cdsr_items.safetensors (its adapted item table, for the projections)
  retrieval            retrieval_{A,B}.faiss(.json): the training users' index per target domain
  lora                 lora/: URLLM's LoRA adapter (peft save_pretrained) and training.json;
                         under torchrun the other ranks join this fine-tune (distributed.py)
  generation           generations.json: per evaluated test line: neighbours, prompt sections,
                         variants (+ "pipeline": the fused list), the fusion weight chosen on
                         valid, and "ranks" {k: {method: [full rank per line]}}
  rerank               rerank.json: "urllm_rerank", the tuned LLM's scores of each test line's
                         dual-graph top-N fused with the dual-graph scores (urllm/methods/rerank.py):
                         per line the candidates, both scores and the fused list; the weight and
                         every weight's MRR on valid; "ranks", the full rank per line
  rsllm                rsllm/: RSLLM's adapter + projectors; rsllm.json: its test metrics and
                         per-line outputs
  evaluation           line_ranks.json: the one table of every method's full rank of the target
                         on every test line (null where a method was not scored), read by the app
                         and the benchmarks; evaluation.json: every method's metrics on the common
                         lines, 95% intervals, the paired difference to the dual-graph model
                         (urllm/stats.py); they are the manifest's metrics
  projections          projections.json + projections.safetensors: per embedding space (dual-graph, MiniLM,
                         LLM4CDSR and RSLLM items; users' domain-specific and mixed vectors) a UMAP
                         layout and each point's nearest neighbours (urllm/pipeline/projections.py)
"""
from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from urllm.data import Dataset, load_dataset
from urllm.io import atomic_save_tensors, atomic_write_json
from urllm.metrics import summarize
from urllm.pipeline import distributed
from urllm.pipeline.config import RunConfig
from urllm.pipeline.context import Context, load_llm
from urllm.pipeline.writer import Run, stage_key
from urllm.schema import STAGE1_METHODS
from urllm.schema import main_k as schema_main_k
from urllm.seed import seed_everything

# Bumped when a stage's files change form, so an older run's stage is rebuilt, not misread
# (2: valid_top rankings, <model>.config.json, the pipeline's fusion in generations.json;
# 3: llm4cdsr_rankings, the rsllm stage; 4: the profiles stage; 5: per-line full ranks, the evaluation stage).
FILES_VERSION = 5


# ---- stage 1 ---------------------------------------------------------------------------------

def build_data(ctx: Context) -> dict:
    ds = ctx.ds
    payload = {
        "describe": ds.describe(),
        "domains": list(ds.domains),
        "items": {"title": ds.item_titles, "domain": ds.item_domain.tolist(), "raw_id": ds.item_raw_ids},
        "users": [{"id": u.raw_id, "items": u.items.tolist()} for u in ds.users],
        "lines": {split: [[ex.user, ex.domain, ex.target, ex.history.tolist()] for ex in ds.splits[split]]
                  for split in ("train", "valid", "test")},
    }
    atomic_write_json(ctx.dir / "data.json", payload)
    d = payload["describe"]
    return {"files": [ctx.dir / "data.json"], "summary": {"users": d["n_users"], "interactions": d["n_interactions"]}}


def _tested(ctx: Context, method: str, scorer, summary: dict, files: list[Path], top_n: int = 0) -> dict:
    """The stage result of a stage-1 method: its full ranks on every test line in <method>.json
    (and with `top_n`, its top-N per test line in <method>_rankings.safetensors), plus the
    ranks with the user's own history items left out of the ranking
    ("test_ranks_excluding_history", the protocol's alternative; urllm/models/evaluation.py)."""
    from urllm.models.evaluation import rank_examples

    ds = ctx.ds
    ranks, domains, top = rank_examples(scorer, ds, ds.splits["test"], top_n=top_n)
    excluding, _, _ = rank_examples(scorer, ds, ds.splits["test"], exclude_history=True)
    if top_n:
        atomic_save_tensors(ctx.dir / f"{method}_rankings.safetensors", {"test_top": torch.from_numpy(top)})
        files.append(ctx.dir / f"{method}_rankings.safetensors")
    metrics = summarize(ranks, domains, ds.domains)
    atomic_write_json(ctx.dir / f"{method}.json", metrics | {"test_ranks": ranks.tolist(),
                                                             "test_ranks_excluding_history": excluding.tolist()})
    files.append(ctx.dir / f"{method}.json")
    summary["test_HR@10"] = round(metrics["overall"]["HR@10"], 4)
    return {"files": files, "summary": summary}


def _fit_summary(run_dir: Path, method: str, result) -> tuple[dict, list[Path]]:
    """The stage summary of a trained sequence model, and its curve file."""
    curve = [{k: v for k, v in h.items() if k != "valid"} | {"valid_" + m: h["valid"][m] for m in ("HR@10", "MRR")}
             for h in result.history]
    atomic_write_json(run_dir / f"{method}_curve.json", curve)
    summary = {"best_epoch": result.best_epoch, "valid_MRR": round(result.best_valid["overall"]["MRR"], 4),
               "train_s": round(result.seconds, 1)}
    return summary, [run_dir / f"{method}_curve.json"]


def build_pop(ctx: Context) -> dict:
    from urllm.models.popularity import Popularity

    seed_everything(ctx.cfg.seed)
    return _tested(ctx, "pop", Popularity(ctx.ds, ctx.ds.splits["train"]), {}, [])


def build_itemknn(ctx: Context) -> dict:
    """Item-to-item transitions of the training sequences (urllm/models/itemknn.py), its
    few parameters chosen on the valid split; the grid and the choice go into the summary."""
    from urllm.models.itemknn import tune_itemknn

    model, report = tune_itemknn(ctx.ds, ctx.cfg.itemknn)
    return _tested(ctx, "itemknn", model, {"chosen": report["chosen"], "grid": report["grid"],
                                           "tune_s": report["seconds"]}, [])


def build_sasrec(ctx: Context) -> dict:
    """SASRec with full-softmax cross-entropy, every point of its grid trained and the best
    on valid kept (urllm/models/sasrec.py); the grid and the choice go into the summary."""
    from urllm.models.sasrec import tune_sasrec
    from urllm.models.trainer import SequenceScorer

    cfg = ctx.cfg
    model, result, report = tune_sasrec(ctx.ds, cfg.sasrec, cfg.seed, ctx.device, cfg.fit.select_metric, cfg.fit.progress)
    summary, files = _fit_summary(ctx.dir, "sasrec", result)
    summary |= {"train_s": report["seconds"], "chosen": report["chosen"], "grid": report["grid"]}
    return _tested(ctx, "sasrec", SequenceScorer(model), summary, files)


def build_sequence_model(method: str, ctx: Context) -> dict:
    """dual_graph or dual_graph_no_graph (one model class, two configs), trained on the
    run's device; the dual-graph model and its exports are saved for the later stages."""
    from urllm.models.dual_graph import DualGraphModel, ablation_config
    from urllm.models.export import export_stage1, save_model
    from urllm.models.trainer import SequenceScorer, fit

    cfg, ds = ctx.cfg, ctx.ds
    seed_everything(cfg.seed)
    model_cfg = {"dual_graph": cfg.dual_graph,
                 "dual_graph_no_graph": ablation_config(**dataclasses.asdict(cfg.dual_graph))}[method]
    model = DualGraphModel(model_cfg, torch.from_numpy(ds.item_domain), ctx.graphs)
    result = fit(model, ds, dataclasses.replace(cfg.fit, seed=cfg.seed), method, ctx.device)
    summary, files = _fit_summary(ctx.dir, method, result)
    scorer = SequenceScorer(model)
    if method == "dual_graph":
        files += save_model(model, ctx.dir, method)
        files += export_stage1(model, ds, ctx.dir, cfg.top_n)
    return _tested(ctx, method, scorer, summary, files)


def build_readout_only(ctx: Context) -> dict:
    """The ablation dual_graph_readout_only: the trained dual-graph model's graph readout
    without its neural threads (urllm/models/readout.py: ReadoutOnlyScorer)."""
    from urllm.models.popularity import Popularity
    from urllm.models.readout import ReadoutOnlyScorer

    popularity = Popularity(ctx.ds, ctx.ds.splits["train"]).counts
    return _tested(ctx, "dual_graph_readout_only", ReadoutOnlyScorer(ctx.dual_graph.model, popularity), {}, [])


def _train_llm4cdsr(cfg: RunConfig, ds: Dataset, run_dir: Path, base_lm: Callable[[], tuple] | None = None,
                    device: torch.device | str = "cpu"):
    """Item text embeddings (cached in the run folder), then the LLM4CDSR model trained on
    `device`, guided by the run's profiles. `base_lm()` gives the base LM for the "lm" and
    "both" embedders (default: load it)."""
    from urllm.methods.llm4cdsr_profiles import load_guidance
    from urllm.models.item_text import item_text_embeddings
    from urllm.models.llm4cdsr import LLM4CDSRModel
    from urllm.models.trainer import fit

    lm = (base_lm or (lambda: load_llm(cfg)))() if cfg.llm4cdsr.embedder in ("lm", "both") else None
    texts = item_text_embeddings(ds, cfg.llm4cdsr.embedder, run_dir, lm=lm, lm_name=cfg.llm.base_model)
    profiles = load_guidance(run_dir)
    # urllm.models.llm4cdsr.train_llm4cdsr's steps, with a device (it takes none)
    fit_cfg = dataclasses.replace(cfg.fit, seed=cfg.seed)
    cfg.llm4cdsr.validate()
    seed_everything(fit_cfg.seed)
    model = LLM4CDSRModel.from_text_embeddings(cfg.llm4cdsr, ds.item_domain, texts, fit_cfg.seed, profiles, len(ds.users))
    return model, fit(model, ds, fit_cfg, "llm4cdsr", device)


def build_llm4cdsr(ctx: Context) -> dict:
    from urllm.models.trainer import SequenceScorer

    seed_everything(ctx.cfg.seed)
    model, result = _train_llm4cdsr(ctx.cfg, ctx.ds, ctx.dir, lambda: ctx.lm, ctx.device)
    summary, files = _fit_summary(ctx.dir, "llm4cdsr", result)
    files += sorted(ctx.dir.glob("item_text_*.safetensors"))
    with torch.no_grad():  # the adapted item table (+ ID part) it scores with, for the embeddings page
        items = model.eval().item_tables().mixed[: ctx.ds.n_items].float().cpu().contiguous()
    atomic_save_tensors(ctx.dir / "llm4cdsr_items.safetensors", {"items": items})
    files.append(ctx.dir / "llm4cdsr_items.safetensors")
    # its top-N per test line: the app's column for it on the Generation page
    return _tested(ctx, "llm4cdsr", SequenceScorer(model), summary, files, top_n=ctx.cfg.top_n)


def build_profiles(ctx: Context) -> dict:
    """LLM4CDSR's hierarchical user profiles (urllm/methods/llm4cdsr_profiles.py) of a configurable
    subset: training users (its guidance) and evaluated test lines (shown in the app)."""
    from urllm.methods import llm4cdsr_profiles as prof
    from urllm.methods.urllm_stage2 import sample_lines
    from urllm.models.item_text import item_text_embeddings

    cfg, ds, pc = ctx.cfg, ctx.ds, ctx.cfg.profiles
    lines = sample_lines(len(ds.splits["test"]), cfg.llm.eval_lines, cfg.seed)
    train_seqs, line_seqs = prof.run_sequences(ds, pc, lines, cfg.seed)
    built: list[dict] = [{}, {}]
    if train_seqs or line_seqs:
        vectors = item_text_embeddings(ds, "minilm", ctx.dir)  # cached: the llm4cdsr stage reads the same file
        model, tok = ctx.lm
        built = [prof.build_profiles(ds, seqs, vectors, model, tok, pc, cfg.seed) for seqs in (train_seqs, line_seqs)]
    files = prof.save_run_profiles(ctx.dir, *built, pc)
    return {"files": files, "summary": {"train_users": len(built[0]), "test_lines": len(built[1])}}


# ---- URLLM's stage 2 ------------------------------------------------------------------------

def _stage2_config(cfg: RunConfig):
    from urllm.methods.urllm_stage2 import Stage2Config

    llm = cfg.llm
    return Stage2Config(k=llm.k, train_lines=llm.train_lines, eval_lines=llm.eval_lines, seed=cfg.seed,
                        retrieval=llm.retrieval, prompt=llm.prompt, lora=llm.lora, generation=llm.generation)


def _bar(desc: str):
    from tqdm.auto import tqdm

    return lambda xs: tqdm(xs, desc=desc, leave=False)


def build_retrieval(ctx: Context) -> dict:
    files = []
    for d, index in enumerate(ctx.neighbours.indexes):
        path = ctx.dir / f"retrieval_{'AB'[d]}.faiss"
        index.save(path)
        files += [path, Path(f"{path}.json")]
    return {"files": files, "summary": {"indexed_users": len(ctx.neighbours.indexes[0])}}


def adapter_fingerprint(model) -> str:
    """sha256 of the LoRA weights: equal on every rank after distributed training."""
    import hashlib

    digest = hashlib.sha256()
    for name, p in sorted((n, p) for n, p in model.named_parameters() if "lora_" in n):
        digest.update(name.encode() + p.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def train_adapter(ctx: Context):
    """URLLM's LoRA fine-tune of the base LM, on this rank (under torchrun every rank runs
    it, DDP): (peft model, training examples, training report)."""
    from urllm.llm.finetune import add_lora, train_lora
    from urllm.methods.urllm_stage2 import training_examples

    cfg = ctx.cfg
    top_of = None
    if cfg.llm.lora.negatives:  # the ranking loss's hard negatives: the dual-graph top-N of training lines
        from urllm.models.evaluation import rank_examples

        train = ctx.ds.splits["train"]
        top_of = lambda lines: rank_examples(ctx.dual_graph, ctx.ds, [train[i] for i in lines],  # noqa: E731
                                             top_n=cfg.llm.lora.negatives_from)[2]
    examples = training_examples(ctx.ds, ctx.prompts, ctx.neighbours, _stage2_config(cfg), top_of,
                                 cfg.llm.lora.negatives_from)
    model, tok = ctx.lm
    peft_model = add_lora(model, dataclasses.replace(cfg.llm.lora, seed=cfg.seed))
    report = train_lora(peft_model, tok, examples, cfg.llm.lora)
    if distributed.active():
        print(f"[lora] rank {torch.distributed.get_rank()} adapter sha256 {adapter_fingerprint(peft_model)}", flush=True)
    return peft_model, examples, report


def build_lora(ctx: Context) -> dict:
    from urllm.llm.finetune import save_adapter

    peft_model, examples, report = train_adapter(ctx)
    ctx.tuned_lm = peft_model  # the generation stage's model, without a reload
    save_adapter(peft_model, ctx.dir / "lora", report)
    files = sorted(p for p in (ctx.dir / "lora").rglob("*") if p.is_file())
    return {"files": files, "summary": {"examples": len(examples), "tokens_per_s": round(report["tokens_per_s"], 1),
                                        "loss_first": round(report["curve"][0]["loss"], 3),
                                        "loss_last": round(report["curve"][-1]["loss"], 3),
                                        "ranks": report["world_size"]}}


def follower(cfg: RunConfig, run_dir: Path) -> None:
    """A rank > 0 under torchrun (urllm/pipeline/distributed.py): wait while rank 0 runs the
    stages before LoRA, join the DDP fine-tune if that stage must run, then leave the rest
    to rank 0 (followers write nothing)."""
    torch.set_num_threads(cfg.threads)
    ctx = Context(cfg, run_dir, load_dataset(cfg.dataset))  # the data first: less for rank 0 to wait for in DDP
    if distributed.broadcast_flag(False):
        train_adapter(ctx)
    distributed.wait_all()


def build_generation(ctx: Context) -> dict:
    from urllm.llm.generate import Generator
    from urllm.methods.urllm_stage2 import choose_fusion_weight, evaluate_lines, line_ranks, pipeline_ranking, sample_lines
    from urllm.models.evaluation import CompletedRanks

    cfg, ds, llm = ctx.cfg, ctx.ds, ctx.cfg.llm
    builder, neighbours = ctx.prompts, ctx.neighbours
    generator = Generator(ctx.generation_lm, ctx.lm[1], ds, llm.generation)
    test_top, valid_top = ctx.rankings["test_top"], ctx.rankings["valid_top"]
    top_k = llm.generation.top_k
    # the pipeline's fusion weight, chosen on validation lines with the main k
    main_k = schema_main_k(llm.k, llm.ks)
    weight, grid, valid_results = 0.0, {}, []
    if llm.valid_lines and ds.splits["valid"]:
        valid = sample_lines(len(ds.splits["valid"]), llm.valid_lines, cfg.seed)
        _, valid_results = evaluate_lines(ds, generator, builder, neighbours, valid_top, valid, main_k,
                                          ("refined",), progress=_bar("valid lines"), split="valid")
        weight, grid = choose_fusion_weight(ds, valid_results, valid_top, top_k, llm.fusion_weights)
    lines = sample_lines(len(ds.splits["test"]), llm.eval_lines, cfg.seed)
    ranker = CompletedRanks(ctx.dual_graph, ds, "test")
    per_k, records, ranks, seconds = {}, {}, {}, {}
    for k in llm.ks:
        start = time.perf_counter()
        metrics, results = evaluate_lines(ds, generator, builder, neighbours, test_top, lines, k,
                                          progress=_bar(f"test lines, k={k}"), fusion_weight=weight, ranker=ranker)
        seconds[str(k)] = round(time.perf_counter() - start, 1)
        per_k[str(k)] = metrics
        ranks[str(k)] = line_ranks(ds, results, test_top, top_k, fusion_weight=weight, ranker=ranker)
        for r in results:
            variants = {v: {"ranking": g.ranking, "fell_back": g.fell_back,
                            "outputs": [dataclasses.asdict(o) for o in g.outputs]}
                        for v, g in r.generations.items()}
            variants["pipeline"] = variants["refined"] | {"ranking": pipeline_ranking(r, test_top, weight, top_k)}
            records.setdefault(str(r.line), {})[str(k)] = {
                "neighbours": r.neighbours, "prompt": r.prompt_sections, "tokens": r.prompt_tokens, "variants": variants}
    atomic_write_json(ctx.dir / "generations.json", {"lines": lines, "ks": llm.ks, "k": llm.k, "metrics": per_k,
                                                      "ranks": ranks, "fusion": {"weight": weight, "valid_HR@10": grid},
                                                      "records": records})
    main = per_k[str(main_k)]
    return {"files": [ctx.dir / "generations.json"],
            "summary": {"lines": len(lines), "valid_lines": len(valid_results) if llm.valid_lines else 0,
                        "test_lines_per_s": round(len(lines) * len(seconds) / max(sum(seconds.values()), 1e-9), 2),
                        "fusion_weight": weight, "HR@10_urllm": round(main["urllm"]["overall"]["HR@10"], 4),
                        "HR@10_dual_graph": round(main["dual_graph"]["overall"]["HR@10"], 4)}}


def build_rerank(ctx: Context) -> dict:
    """"urllm_rerank" (urllm/methods/rerank.py): the tuned LLM scores each line's dual-graph
    top-N, fused with the dual-graph scores at the weight with the best MRR on valid lines."""
    from urllm.methods.rerank import TitleScorer, choose_weight, rankings, score_lines
    from urllm.methods.urllm_stage2 import sample_lines
    from urllm.models.evaluation import CompletedRanks

    cfg, ds, llm = ctx.cfg, ctx.ds, ctx.cfg.llm
    rc, k = llm.rerank, schema_main_k(llm.k, llm.ks)
    scorer = TitleScorer(ctx.generation_lm, ctx.lm[1], ds, ctx.prompts, rc)
    start = time.perf_counter()
    valid = sample_lines(len(ds.splits["valid"]), rc.valid_lines, cfg.seed)
    valid_scored = score_lines(scorer, ctx.neighbours, ctx.rankings["valid_top"], CompletedRanks(ctx.dual_graph, ds, "valid"),
                               valid, k, "valid", progress=_bar("rerank valid lines"))
    weight, grid = choose_weight(ds, valid_scored, rc.weights) if valid else (0.0, {})
    valid_s = time.perf_counter() - start
    lines = sample_lines(len(ds.splits["test"]), llm.eval_lines, cfg.seed)
    ranker = CompletedRanks(ctx.dual_graph, ds, "test")
    scored = score_lines(scorer, ctx.neighbours, ctx.rankings["test_top"], ranker, lines, k, "test",
                         progress=_bar("rerank test lines"))
    lists = rankings(scored, weight)
    ranks = [ranker.rank(line, ranking) for line, ranking in zip(scored.lines, lists)]
    test_s = time.perf_counter() - start - valid_s
    records = {str(line): {"candidates": c, "dual": np.round(d, 4).tolist(), "llm": np.round(s, 4).tolist(),
                           "raw": np.round(r, 4).tolist(), "ranking": ranking, "neighbours": nb}
               for line, c, d, s, r, ranking, nb in zip(scored.lines, scored.candidates, scored.dual, scored.llm,
                                                          scored.raw, lists, scored.neighbours)}
    atomic_write_json(ctx.dir / "rerank.json", {
        "lines": lines, "ranks": ranks, "k": k, "weight": weight, "candidates": rc.candidates,
        "calibrate": rc.calibrate, "valid": {"lines": len(valid), "MRR": grid}, "records": records})
    return {"files": [ctx.dir / "rerank.json"],
            "summary": {"lines": len(lines), "valid_lines": len(valid), "weight": weight,
                        "valid_lines_per_s": round(len(valid) / max(valid_s, 1e-9), 2),
                        "test_lines_per_s": round(len(lines) / max(test_s, 1e-9), 2)}}


# ---- RSLLM, the evaluation, the projections ------------------------------------------------

def build_rsllm(ctx: Context) -> dict:
    """RSLLM (urllm/methods/rsllm_run.py): a fresh base LM, its two-stage fine-tune with the
    dual-graph item table as soft tokens, scored on URLLM's test lines."""
    from urllm.methods import rsllm_run
    from urllm.methods.urllm_stage2 import sample_lines
    from urllm.models.evaluation import CompletedRanks

    cfg, ds, llm = ctx.cfg, ctx.ds, ctx.cfg.llm
    lines = sample_lines(len(ds.splits["test"]), llm.eval_lines, cfg.seed)
    rcfg = rsllm_run.RSLLMRunConfig(cfg.rsllm, llm.lora, llm.prompt, llm.generation, llm.train_lines, cfg.seed)
    model, tok = ctx.fresh_lm()
    result = rsllm_run.train_and_evaluate(ds, model, tok, ctx.vectors, ctx.rankings["test_top"], lines, rcfg,
                                          progress=_bar("rsllm test lines"), ranker=CompletedRanks(ctx.dual_graph, ds, "test"))
    files = rsllm_run.save(result, ctx.dir / "rsllm")
    rsllm_run.write_results(ctx.dir / "rsllm.json", lines, result)
    report = result.report
    return {"files": [*files, ctx.dir / "rsllm.json"],
            "summary": {"lines": len(lines), "unified_loss_last": round(report["unified_stage"]["curve"][-1]["loss"], 3)
                        if report["unified_stage"]["curve"] else None,
                        "train_s": round(report["text_stage"]["seconds"] + report["unified_stage"]["seconds"], 1),
                        "test_lines_per_s": round(len(lines) / max(report["eval_s"], 1e-9), 2),
                        "HR@10": round(result.metrics["overall"]["HR@10"], 4)}}


ANSWER_RATES = ("ood_rate", "valid_rate", "dup_rate", "fallback_rate", "fusion_weight")  # LLM methods, kept as computed


def _spread(lines: list[int], values: list, n: int) -> list:
    """Values of some lines at their place among n lines; None elsewhere."""
    out = [None] * n
    for line, v in zip(lines, values):
        out[line] = int(v) if v is not None and np.isfinite(v) else None
    return out


def build_evaluation(ctx: Context) -> dict:
    """The one per-line table of every method's full rank (line_ranks.json) and, from it,
    every method's metrics on the lines all of them were scored on, with 95% intervals and
    the paired difference to the dual-graph model (evaluation.json; urllm/stats.py)."""
    from urllm.stats import compare

    cfg, ds, run_dir = ctx.cfg, ctx.ds, ctx.dir
    n = len(ds.splits["test"])
    table = {m: _spread(list(range(n)), json.loads((run_dir / f"{m}.json").read_text())["test_ranks"], n)
             for m in STAGE1_METHODS}
    gens = json.loads((run_dir / "generations.json").read_text())
    main_k = str(schema_main_k(gens["k"], gens["ks"]))
    rates = {m: v["overall"] for m, v in gens["metrics"][main_k].items()}
    table |= {m: _spread(gens["lines"], r, n) for m, r in gens["ranks"][main_k].items() if m != "dual_graph"}
    rerank = json.loads((run_dir / "rerank.json").read_text())
    table["urllm_rerank"] = _spread(rerank["lines"], rerank["ranks"], n)
    # a reordering of in-domain catalogue items: never out of domain, invalid or repeated
    rates["urllm_rerank"] = {"fusion_weight": rerank["weight"], "ood_rate": 0.0, "valid_rate": 1.0, "dup_rate": 0.0}
    rs = json.loads((run_dir / "rsllm.json").read_text())
    table["rsllm"] = _spread(rs["lines"], rs["ranks"], n)
    rates["rsllm"] = rs["metrics"]["overall"]
    ranks = {m: np.array([np.nan if v is None else v for v in r], np.float64) for m, r in table.items()}
    scored = int(np.logical_and.reduce([~np.isnan(r) for r in ranks.values()]).sum())
    line_set = "every test line" if scored == n else f"the {scored} test lines every method was scored on (seed {cfg.seed})"
    metrics = compare(ranks, np.array([ex.domain for ex in ds.splits["test"]]), ds.domains, cfg.seed, line_set=line_set)
    for m, overall in rates.items():
        if m in metrics:
            metrics[m]["overall"] |= {r: overall[r] for r in ANSWER_RATES if r in overall}
    atomic_write_json(run_dir / "line_ranks.json", {"split": "test", "lines": list(range(n)), "methods": table})
    atomic_write_json(run_dir / "evaluation.json", metrics)
    return {"files": [run_dir / "line_ranks.json", run_dir / "evaluation.json"],
            "summary": {"lines": scored, "methods": len(table)}}


def build_projections(ctx: Context) -> dict:
    """Every embedding space the run has (urllm/pipeline/projections.py), each with its UMAP
    layout and every projected point's nearest neighbours."""
    from urllm.models.projection import ProjectionConfig
    from urllm.pipeline.projections import write_projections

    cfg = ctx.cfg
    pc = ProjectionConfig(n_neighbors=cfg.umap_neighbors, max_points=cfg.umap_max_points, seed=cfg.seed)
    files, summary = write_projections(ctx.dir, ctx.ds, ctx.vectors, pc, n_jobs=cfg.threads)
    return {"files": files, "summary": summary}


# ---- the table --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stage:
    """One stage of a run. `build(ctx)` writes the stage's files (atomically) and returns
    {"files": [paths], "summary": {...}}; the stage's key is made of `config`, `reads` and
    FILES_VERSION (`stage_inputs`)."""

    name: str
    build: Callable[[Context], dict]
    config: tuple[str, ...] = ()  # dotted paths into RunConfig: the values the builder reads
    reads: tuple[str, ...] = ()  # earlier stages whose outputs the builder reads
    ddp: bool = False  # under torchrun the other ranks join the build (follower)


_SEQUENCE_MODEL = ("dual_graph", "fit", "seed")
STAGE_TABLE = (  # in urllm.schema.STAGES order
    Stage("data", build_data, ("dataset",)),
    Stage("pop", build_pop, (), ("data",)),
    Stage("itemknn", build_itemknn, ("itemknn",), ("data",)),
    Stage("sasrec", build_sasrec, ("sasrec", "fit.select_metric", "seed"), ("data",)),
    Stage("dual_graph", partial(build_sequence_model, "dual_graph"), (*_SEQUENCE_MODEL, "top_n"), ("data",)),
    Stage("dual_graph_no_graph", partial(build_sequence_model, "dual_graph_no_graph"), _SEQUENCE_MODEL, ("data",)),
    Stage("dual_graph_readout_only", build_readout_only, (), ("dual_graph",)),
    Stage("profiles", build_profiles, ("profiles", "llm.base_model", "llm.eval_lines", "seed"), ("data",)),
    Stage("llm4cdsr", build_llm4cdsr, ("llm4cdsr", "fit", "top_n", "seed", "llm.base_model"), ("data", "profiles")),
    Stage("retrieval", build_retrieval, ("llm.retrieval",), ("dual_graph",)),
    Stage("lora", build_lora, ("llm.base_model", "llm.train_lines", "llm.prompt", "llm.lora", "seed"),
          ("dual_graph", "retrieval"), ddp=True),
    Stage("generation", build_generation, ("llm.k", "llm.ks", "llm.eval_lines", "llm.valid_lines", "llm.fusion_weights",
                                           "llm.generation", "seed"), ("dual_graph", "retrieval", "lora")),
    Stage("rerank", build_rerank, ("llm.k", "llm.ks", "llm.eval_lines", "llm.rerank", "llm.generation.dtype",
                                   "llm.generation.merge_adapter", "seed"), ("dual_graph", "retrieval", "lora")),
    Stage("rsllm", build_rsllm, ("rsllm", "llm.base_model", "llm.train_lines", "llm.eval_lines", "llm.prompt", "llm.lora",
                                 "llm.generation", "seed"), ("dual_graph",)),
    Stage("evaluation", build_evaluation, ("seed",), (*STAGE1_METHODS, "generation", "rerank", "rsllm")),
    Stage("projections", build_projections, ("umap_neighbors", "umap_max_points", "seed"),
          ("dual_graph", "profiles", "llm4cdsr", "rsllm")),  # the stages whose vectors it lays out
)


def _config_value(cfg: RunConfig, path: str):
    node = cfg
    for part in path.split("."):
        node = getattr(node, part)
    return dataclasses.asdict(node) if dataclasses.is_dataclass(node) else node


def stage_inputs(cfg: RunConfig) -> dict[str, dict]:
    """What each stage's key hashes: its name, FILES_VERSION, its config values and the
    keys of the stages it reads (so a stage is rebuilt when anything upstream is)."""
    inputs: dict[str, dict] = {}
    for stage in STAGE_TABLE:
        inputs[stage.name] = {"stage": stage.name, "v": FILES_VERSION,
                              "config": {path: _config_value(cfg, path) for path in stage.config},
                              "reads": {name: stage_key(inputs[name]) for name in stage.reads}}
    return inputs


def run_pipeline(cfg: RunConfig, run: Run, ds: Dataset | None = None, only: set[str] | None = None) -> dict:
    """Every stage of STAGE_TABLE in order, each built unless its last result is fresh, on
    rank 0 (under torchrun the followers join the lora stage: `follower`); returns the
    metrics the manifest records. `only` (benchmarks) runs those stages and the stages they
    read, and leaves the run incomplete unless every stage ran."""
    torch.set_num_threads(cfg.threads)
    ctx = Context(cfg, run.dir, ds)
    run.record_dataset(cfg.dataset, ctx.ds.describe())
    inputs = stage_inputs(cfg)
    wanted = _with_inputs(only) if only is not None else {s.name for s in STAGE_TABLE}
    for stage in STAGE_TABLE:
        if stage.name not in wanted:
            continue
        joined = stage.ddp and distributed.active()
        if joined:  # the followers wait for this flag: whether they train with rank 0
            distributed.broadcast_flag(not run.is_fresh(stage.name, stage_key(inputs[stage.name])))
        run.stage(stage.name, inputs[stage.name], lambda _run_dir, build=stage.build: build(ctx))
        if joined:
            distributed.wait_all()
    if "evaluation" not in wanted:
        return {}
    metrics = json.loads((run.dir / "evaluation.json").read_text())
    if wanted == {s.name for s in STAGE_TABLE}:
        run.finish(metrics)
    return metrics


def _with_inputs(names: set[str]) -> set[str]:
    """`names` and every stage they read, transitively (ValueError for an unknown name)."""
    table = {s.name: s for s in STAGE_TABLE}
    unknown = sorted(set(names) - set(table))
    if unknown:
        raise ValueError(f"unknown stages {unknown}: expected names from {list(table)}")
    out, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name not in out:
            out.add(name)
            todo.extend(table[name].reads)
    return out
