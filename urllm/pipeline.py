"""The stages of a run, in order; train.py calls `run_pipeline`. Each stage reads the
config sections it names and the files of the stages before it, and writes its own files
atomically (urllm/run.py decides whether it must run at all).

Files of a run (besides manifest.json):
  data.json                     dataset figures, items, users' sequences, test lines
  pop.json, sasrec.json, ...    per-method test metrics and "test_ranks", the target's full rank on every test
                                line (llm4cdsr.json too; item_text_*.safetensors its text embeddings,
                                llm4cdsr_rankings.safetensors its top-N per test line)
  dual_graph.safetensors/.json  the dual-graph model; stage1_*.safetensors its exports
  retrieval_{A,B}.faiss(.json)  user indexes per target domain
  lora/                         the LoRA adapter (peft save_pretrained) and training.json
  profiles.json                 LLM4CDSR's hierarchical user profiles (texts, clusters), and
  profile_embeddings.safetensors  the profiled training users' embeddings (its guidance)
  rsllm/, rsllm.json            RSLLM's adapter + projectors, and its test metrics and per-line outputs
  generations.json              per evaluated test line: neighbours, prompt sections, variants
                                (+ "pipeline": the fused list), the fusion weight chosen on valid, and
                                "ranks" {k: {method: [full rank per line]}}
  line_ranks.json               the one table: every method's full rank of the target on every test line
                                (null where a method was not scored), read by the app and the benchmarks
  evaluation.json               every method's metrics on the common lines, 95% intervals, and the paired
                                difference to the dual-graph model (urllm/stats.py); the manifest's metrics
  projections.safetensors       UMAP of items and users
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from urllm.config import RunConfig
from urllm.data import Dataset, load_dataset
from urllm.evaluation import rank_examples
from urllm.metrics import summarize
from urllm.io import atomic_save_tensors, atomic_write_json
from urllm.run import Run
from urllm.seed import seed_everything

STAGE1_METHODS = ("pop", "sasrec", "dual_graph", "dual_graph_no_graph", "llm4cdsr")
# Bumped when a stage's files change form, so an older run's stage is rebuilt, not misread
# (2: valid_top rankings, <model>.config.json, the pipeline's fusion in generations.json;
# 3: llm4cdsr_rankings, the rsllm stage; 4: the profiles stage; 5: per-line full ranks, the evaluation stage).
FILES_VERSION = 5


def _asdict(x):
    return dataclasses.asdict(x) if dataclasses.is_dataclass(x) else x


def data_stage(cfg: RunConfig, ds: Dataset):
    def build(run_dir: Path) -> dict:
        payload = {
            "describe": ds.describe(),
            "domains": list(ds.domains),
            "items": {"title": ds.item_titles, "domain": ds.item_domain.tolist(), "raw_id": ds.item_raw_ids},
            "users": [{"id": u.raw_id, "items": u.items.tolist()} for u in ds.users],
            "lines": {split: [[ex.user, ex.domain, ex.target, ex.history.tolist()] for ex in ds.splits[split]]
                      for split in ("train", "valid", "test")},
        }
        atomic_write_json(run_dir / "data.json", payload)
        d = payload["describe"]
        return {"files": [run_dir / "data.json"], "summary": {"users": d["n_users"], "interactions": d["n_interactions"]}}

    return build


def _graphs(ds: Dataset):
    from urllm.models.graphs import build_graphs
    from urllm.models.sequences import graph_sequences

    return build_graphs(graph_sequences(ds.splits["train"]), ds.item_domain, ds.item_attributes)


def stage1_method(cfg: RunConfig, ds: Dataset, method: str, graphs):
    from urllm.models.dual_graph import DualGraphModel, ablation_config, sasrec_config
    from urllm.models.export import export_stage1, save_model
    from urllm.models.popularity import Popularity
    from urllm.models.trainer import SequenceScorer, fit

    def build(run_dir: Path) -> dict:
        seed_everything(cfg.seed)
        files, summary = [], {}
        if method == "pop":
            scorer = Popularity(ds, ds.splits["train"])
        elif method == "llm4cdsr":
            model, result = _train_llm4cdsr(cfg, ds, run_dir)
            summary, files = _fit_summary(run_dir, method, result)
            files += sorted(run_dir.glob("item_text_*.safetensors"))
            scorer = SequenceScorer(model)
        else:
            model_cfg = {"dual_graph": cfg.dual_graph, "sasrec": sasrec_config(**dataclasses.asdict(cfg.dual_graph)),
                         "dual_graph_no_graph": ablation_config(**dataclasses.asdict(cfg.dual_graph))}[method]
            model = DualGraphModel(model_cfg, torch.from_numpy(ds.item_domain), graphs)
            result = fit(model, ds, dataclasses.replace(cfg.fit, seed=cfg.seed), method)
            summary, files = _fit_summary(run_dir, method, result)
            scorer = SequenceScorer(model)
            if method == "dual_graph":
                files += save_model(model, run_dir, method)
                files += export_stage1(model, ds, run_dir, cfg.top_n)
        ranks, domains, top = rank_examples(scorer, ds, ds.splits["test"], top_n=cfg.top_n if method == "llm4cdsr" else 0)
        if method == "llm4cdsr":  # its top-N per test line: the app's column for it on the Generation page
            atomic_save_tensors(run_dir / "llm4cdsr_rankings.safetensors", {"test_top": torch.from_numpy(top)})
            files.append(run_dir / "llm4cdsr_rankings.safetensors")
        metrics = summarize(ranks, domains, ds.domains)
        atomic_write_json(run_dir / f"{method}.json", metrics | {"test_ranks": ranks.tolist()})
        files.append(run_dir / f"{method}.json")
        summary["test_HR@10"] = round(metrics["overall"]["HR@10"], 4)
        return {"files": files, "summary": summary}

    return build


def dual_graph_ranker(ds: Dataset, run_dir: Path, graphs):
    """Full ranks for the LLM methods' lists, completed by the run's dual-graph model."""
    from urllm.evaluation import CompletedRanks
    from urllm.models.export import load_model
    from urllm.models.trainer import SequenceScorer

    model = load_model(run_dir, "dual_graph", torch.from_numpy(ds.item_domain), graphs)
    return CompletedRanks(SequenceScorer(model), ds, "test")


def llm_device(cfg: RunConfig) -> torch.device:
    """Where the LLM stages run: under torchrun each rank takes the GPU of its LOCAL_RANK."""
    import os

    if cfg.device != "auto":
        return torch.device(cfg.device)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def _fit_summary(run_dir: Path, method: str, result) -> tuple[dict, list[Path]]:
    """The stage summary of a trained sequence model, and its curve file."""
    curve = [{k: v for k, v in h.items() if k != "valid"} | {"valid_" + m: h["valid"][m] for m in ("HR@10", "MRR")}
             for h in result.history]
    atomic_write_json(run_dir / f"{method}_curve.json", curve)
    summary = {"best_epoch": result.best_epoch, "valid_MRR": round(result.best_valid["overall"]["MRR"], 4),
               "train_s": round(result.seconds, 1)}
    return summary, [run_dir / f"{method}_curve.json"]


def _train_llm4cdsr(cfg: RunConfig, ds: Dataset, run_dir: Path):
    """Item text embeddings (cached in the run folder), then the LLM4CDSR model."""
    from urllm.models.item_text import item_text_embeddings
    from urllm.models.llm4cdsr import train_llm4cdsr

    from urllm.llm.profiles import load_guidance

    lm = load_llm(cfg) if cfg.llm4cdsr.embedder in ("lm", "both") else None
    texts = item_text_embeddings(ds, cfg.llm4cdsr.embedder, run_dir, lm=lm, lm_name=cfg.llm.base_model)
    return train_llm4cdsr(ds, cfg.llm4cdsr, dataclasses.replace(cfg.fit, seed=cfg.seed), texts,
                          profiles=load_guidance(run_dir))


def profiles_stage(cfg: RunConfig, ds: Dataset):
    """LLM4CDSR's hierarchical user profiles (urllm/llm/profiles.py) of a configurable
    subset: training users (its guidance) and evaluated test lines (shown in the app)."""
    from urllm.llm import profiles as prof
    from urllm.llm.stage2 import sample_lines
    from urllm.models.item_text import item_text_embeddings

    def build(run_dir: Path) -> dict:
        pc = cfg.profiles
        lines = sample_lines(len(ds.splits["test"]), cfg.llm.eval_lines, cfg.seed)
        train_seqs, line_seqs = prof.run_sequences(ds, pc, lines, cfg.seed)
        built: list[dict] = [{}, {}]
        if train_seqs or line_seqs:
            vectors = item_text_embeddings(ds, "minilm", run_dir)  # cached: the llm4cdsr stage reads the same file
            model, tok = load_llm(cfg)
            built = [prof.build_profiles(ds, seqs, vectors, model, tok, pc, cfg.seed) for seqs in (train_seqs, line_seqs)]
        files = prof.save_run_profiles(run_dir, *built, pc)
        return {"files": files, "summary": {"train_users": len(built[0]), "test_lines": len(built[1])}}

    return build


def load_llm(cfg: RunConfig):
    from urllm.llm.base import load_named

    model, tok = load_named(cfg.llm.base_model, cfg.seed)
    return model.to(llm_device(cfg)), tok


def _stage2_config(cfg: RunConfig):
    from urllm.llm.stage2 import Stage2Config

    llm = cfg.llm
    return Stage2Config(k=llm.k, train_lines=llm.train_lines, eval_lines=llm.eval_lines, seed=cfg.seed,
                        retrieval=llm.retrieval, prompt=llm.prompt, lora=llm.lora, generation=llm.generation)


def _lora_setup(cfg: RunConfig, ds: Dataset, run_dir: Path):
    """What the LoRA stage needs, rebuilt from the run's files (every rank does the same)."""
    from safetensors.torch import load_file

    from urllm.llm.prompt import PromptBuilder
    from urllm.llm.stage2 import Neighbours

    neighbours = Neighbours(ds, load_file(run_dir / "stage1_vectors.safetensors"), cfg.llm.retrieval)
    model, tok = load_llm(cfg)
    return neighbours, model, tok, PromptBuilder(ds, tok, cfg.llm.prompt)


def _train_adapter(cfg: RunConfig, ds: Dataset, neighbours, model, tok, builder):
    from urllm.llm.finetune import add_lora, train_lora
    from urllm.llm.stage2 import training_examples

    examples = training_examples(ds, builder, neighbours, _stage2_config(cfg))
    peft_model = add_lora(model, dataclasses.replace(cfg.llm.lora, seed=cfg.seed))
    return peft_model, examples, train_lora(peft_model, tok, examples, cfg.llm.lora)


def adapter_fingerprint(model) -> str:
    """sha256 of the LoRA weights: equal on every rank after distributed training."""
    import hashlib

    digest = hashlib.sha256()
    for name, p in sorted((n, p) for n, p in model.named_parameters() if "lora_" in n):
        digest.update(name.encode() + p.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def broadcast_flag(value: bool) -> bool:
    """Rank 0's `value` on every rank (nccl can only send GPU tensors)."""
    on = torch.device("cuda", torch.cuda.current_device()) if torch.distributed.get_backend() == "nccl" else "cpu"
    flag = torch.tensor([int(value)], device=on)
    torch.distributed.broadcast(flag, src=0)
    return bool(flag.item())


def follower(cfg: RunConfig, run_dir: Path) -> None:
    """Ranks > 0 under torchrun: wait while rank 0 runs the stages before LoRA, join the
    DDP fine-tune if it must run, then leave the rest to rank 0."""
    torch.set_num_threads(cfg.threads)
    ds = load_dataset(cfg.dataset)
    torch.distributed.barrier()
    if broadcast_flag(False):
        peft_model, _, _ = _train_adapter(cfg, ds, *_lora_setup(cfg, ds, Path(run_dir)))
        print(f"[lora] rank {torch.distributed.get_rank()} adapter sha256 {adapter_fingerprint(peft_model)}", flush=True)
    torch.distributed.barrier()


def _bar(desc: str):
    from tqdm.auto import tqdm

    return lambda xs: tqdm(xs, desc=desc, leave=False)


def llm_stages(cfg: RunConfig, ds: Dataset, run: Run, upstream: str, graphs) -> dict:
    from safetensors.torch import load_file

    from urllm.llm.finetune import load_adapter, save_adapter
    from urllm.llm.generate import Generator, for_generation
    from urllm.llm.stage2 import choose_fusion_weight, evaluate_lines, line_ranks, pipeline_ranking, sample_lines
    from urllm.run import stage_key

    llm = cfg.llm
    test_top = load_file(run.dir / "stage1_rankings.safetensors")["test_top"]
    neighbours, model, tok, builder = _lora_setup(cfg, ds, run.dir)

    def retrieval(run_dir: Path) -> dict:
        files = []
        for d, index in enumerate(neighbours.indexes):
            path = run_dir / f"retrieval_{'AB'[d]}.faiss"
            index.save(path)
            files += [path, Path(f"{path}.json")]
        return {"files": files, "summary": {"indexed_users": len(neighbours.indexes[0])}}

    retrieval_rec = run.stage("retrieval", {"retrieval": _asdict(llm.retrieval), "up": upstream}, retrieval)
    lora_inputs = {"llm": {k: _asdict(getattr(llm, k)) for k in ("base_model", "train_lines", "prompt", "lora")},
                   "seed": cfg.seed, "up": retrieval_rec["key"]}
    if _distributed():  # the other ranks wait here, then train with rank 0 if needed
        torch.distributed.barrier()
        broadcast_flag(not run.is_fresh("lora", stage_key(lora_inputs)))
    trained = {}

    def lora(run_dir: Path) -> dict:
        peft_model, examples, report = _train_adapter(cfg, ds, neighbours, model, tok, builder)
        trained["model"] = peft_model
        save_adapter(peft_model, run_dir / "lora", report)
        files = sorted(p for p in (run_dir / "lora").rglob("*") if p.is_file())
        return {"files": files, "summary": {"examples": len(examples), "tokens_per_s": round(report["tokens_per_s"], 1),
                                            "loss_first": round(report["curve"][0]["loss"], 3),
                                            "loss_last": round(report["curve"][-1]["loss"], 3),
                                            "ranks": report["world_size"]}}

    lora_rec = run.stage("lora", lora_inputs, lora)
    if _distributed():
        if "model" in trained:
            print(f"[lora] rank 0 adapter sha256 {adapter_fingerprint(trained['model'])}", flush=True)
        torch.distributed.barrier()
    tuned = trained.get("model") or load_adapter(model, run.dir / "lora")

    def generation(run_dir: Path) -> dict:
        generator = Generator(for_generation(tuned, llm.generation), tok, ds, llm.generation)
        rankings = load_file(run.dir / "stage1_rankings.safetensors")
        top_k = llm.generation.top_k
        # the pipeline's fusion weight, chosen on validation lines with the main k
        main_k = llm.k if llm.k in llm.ks else llm.ks[0]
        weight, grid, valid_results = 0.0, {}, []
        if llm.valid_lines and ds.splits["valid"]:
            valid = sample_lines(len(ds.splits["valid"]), llm.valid_lines, cfg.seed)
            _, valid_results = evaluate_lines(ds, generator, builder, neighbours, rankings["valid_top"], valid, main_k,
                                              ("refined",), progress=_bar("valid lines"), split="valid")
            weight, grid = choose_fusion_weight(ds, valid_results, rankings["valid_top"], top_k, llm.fusion_weights)
        lines = sample_lines(len(ds.splits["test"]), llm.eval_lines, cfg.seed)
        ranker = dual_graph_ranker(ds, run_dir, graphs)
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
        atomic_write_json(run_dir / "generations.json", {"lines": lines, "ks": llm.ks, "k": llm.k, "metrics": per_k,
                                                          "ranks": ranks, "fusion": {"weight": weight, "valid_HR@10": grid},
                                                          "records": records})
        main = per_k[str(main_k)]
        return {"files": [run_dir / "generations.json"],
                "summary": {"lines": len(lines), "valid_lines": len(valid_results) if llm.valid_lines else 0,
                            "test_lines_per_s": round(len(lines) * len(seconds) / max(sum(seconds.values()), 1e-9), 2),
                            "fusion_weight": weight, "HR@10_urllm": round(main["urllm"]["overall"]["HR@10"], 4),
                            "HR@10_dual_graph": round(main["dual_graph"]["overall"]["HR@10"], 4)}}

    gen_inputs = {"llm": {k: _asdict(getattr(llm, k)) for k in ("k", "ks", "eval_lines", "valid_lines", "fusion_weights", "generation")},
                  "v": FILES_VERSION, "up": lora_rec["key"]}
    return run.stage("generation", gen_inputs, generation)["key"]


def rsllm_stage(cfg: RunConfig, ds: Dataset, graphs):
    """RSLLM (urllm/llm/rsllm_run.py): a fresh base LM, its two-stage fine-tune with the
    dual-graph item table as soft tokens, scored on URLLM's test lines."""
    from safetensors.torch import load_file

    from urllm.llm import rsllm_run
    from urllm.llm.stage2 import sample_lines

    def build(run_dir: Path) -> dict:
        vectors = load_file(run_dir / "stage1_vectors.safetensors")
        test_top = load_file(run_dir / "stage1_rankings.safetensors")["test_top"]
        lines = sample_lines(len(ds.splits["test"]), cfg.llm.eval_lines, cfg.seed)
        llm = cfg.llm
        rcfg = rsllm_run.RSLLMRunConfig(cfg.rsllm, llm.lora, llm.prompt, llm.generation, llm.train_lines, cfg.seed)
        model, tok = load_llm(cfg)
        result = rsllm_run.train_and_evaluate(ds, model, tok, vectors, test_top, lines, rcfg, progress=_bar("rsllm test lines"),
                                              ranker=dual_graph_ranker(ds, run_dir, graphs))
        files = rsllm_run.save(result, run_dir / "rsllm")
        rsllm_run.write_results(run_dir / "rsllm.json", lines, result)
        report = result.report
        return {"files": [*files, run_dir / "rsllm.json"],
                "summary": {"lines": len(lines), "unified_loss_last": round(report["unified_stage"]["curve"][-1]["loss"], 3)
                            if report["unified_stage"]["curve"] else None,
                            "train_s": round(report["text_stage"]["seconds"] + report["unified_stage"]["seconds"], 1),
                            "test_lines_per_s": round(len(lines) / max(report["eval_s"], 1e-9), 2),
                            "HR@10": round(result.metrics["overall"]["HR@10"], 4)}}

    return build


def projection_stage(cfg: RunConfig, ds: Dataset):
    from safetensors.torch import load_file

    from urllm.projection import ProjectionConfig, project_run

    def build(run_dir: Path) -> dict:
        vectors = load_file(run_dir / "stage1_vectors.safetensors")
        test = ds.splits["test"]
        users = vectors["users_test"][torch.arange(len(test)), torch.tensor([ex.domain for ex in test])].numpy()
        pc = ProjectionConfig(n_neighbors=cfg.umap_neighbors, max_points=cfg.umap_max_points, seed=cfg.seed)
        arrays = project_run(vectors["items"].numpy(), ds.item_domain, users, np.array([ex.domain for ex in test]), pc)
        atomic_save_tensors(run_dir / "projections.safetensors", {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()})
        return {"files": [run_dir / "projections.safetensors"], "summary": {"items": len(arrays["items_rows"]), "users": len(arrays["users_rows"])}}

    return build


ANSWER_RATES = ("ood_rate", "valid_rate", "dup_rate", "fallback_rate", "fusion_weight")  # LLM methods, kept as computed


def _spread(lines: list[int], values: list, n: int) -> list:
    """Values of some lines at their place among n lines; None elsewhere."""
    out = [None] * n
    for line, v in zip(lines, values):
        out[line] = int(v) if v is not None and np.isfinite(v) else None
    return out


def evaluation_stage(cfg: RunConfig, ds: Dataset):
    """The one per-line table of every method's full rank (line_ranks.json) and, from it,
    every method's metrics on the lines all of them were scored on, with 95% intervals and
    the paired difference to the dual-graph model (evaluation.json; urllm/stats.py)."""
    from urllm.stats import compare

    def build(run_dir: Path) -> dict:
        n = len(ds.splits["test"])
        table = {m: _spread(list(range(n)), json.loads((run_dir / f"{m}.json").read_text())["test_ranks"], n)
                 for m in STAGE1_METHODS}
        gens = json.loads((run_dir / "generations.json").read_text())
        main_k = str(gens["k"] if gens["k"] in gens["ks"] else gens["ks"][0])
        rates = {m: v["overall"] for m, v in gens["metrics"][main_k].items()}
        table |= {m: _spread(gens["lines"], r, n) for m, r in gens["ranks"][main_k].items() if m != "dual_graph"}
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

    return build


def run_pipeline(cfg: RunConfig, run: Run, ds: Dataset | None = None) -> dict:
    torch.set_num_threads(cfg.threads)
    ds = ds if ds is not None else load_dataset(cfg.dataset)
    data_rec = run.stage("data", {"dataset": cfg.dataset}, data_stage(cfg, ds))
    run.manifest["dataset"] = {"spec": cfg.dataset, "describe": ds.describe()}
    graphs = _graphs(ds)
    keys = {}
    for method in STAGE1_METHODS:
        model_cfg = cfg.llm4cdsr if method == "llm4cdsr" else cfg.dual_graph
        inputs = {"model": _asdict(model_cfg), "fit": _asdict(cfg.fit), "top_n": cfg.top_n, "seed": cfg.seed, "v": FILES_VERSION,
                  "method": method, "up": data_rec["key"]}
        if method == "llm4cdsr":  # its "lm" embedder reads the base LM; its guidance, the profiles
            inputs["base_model"] = cfg.llm.base_model
            inputs["up_profiles"] = run.stage(
                "profiles", {"profiles": _asdict(cfg.profiles), "base_model": cfg.llm.base_model, "seed": cfg.seed,
                             "eval_lines": cfg.llm.eval_lines, "v": FILES_VERSION, "up": data_rec["key"]},
                profiles_stage(cfg, ds))["key"]
        keys[method] = run.stage(method, inputs, stage1_method(cfg, ds, method, graphs))["key"]
    keys["generation"] = llm_stages(cfg, ds, run, keys["dual_graph"], graphs)
    llm = cfg.llm
    keys["rsllm"] = run.stage(
        "rsllm", {"rsllm": _asdict(cfg.rsllm), "seed": cfg.seed, "v": FILES_VERSION, "up": keys["dual_graph"],
                  "llm": {k: _asdict(getattr(llm, k)) for k in ("base_model", "train_lines", "eval_lines", "prompt",
                                                                 "lora", "generation")}},
        rsllm_stage(cfg, ds, graphs))["key"]
    run.stage("evaluation", {"seed": cfg.seed, "v": FILES_VERSION, "up": keys}, evaluation_stage(cfg, ds))
    metrics = json.loads((run.dir / "evaluation.json").read_text())
    run.stage("projections", {"n": cfg.umap_neighbors, "max": cfg.umap_max_points, "seed": cfg.seed, "up": keys["dual_graph"]},
              projection_stage(cfg, ds))
    run.finish(metrics)
    return metrics
