"""The three methods and the baselines on Art-Office, in one table with training times.

    .venv/bin/python benchmarks/methods_art_office.py --out artifacts/bench/methods \
        [--stage2 artifacts/bench/ao-stage2/stage2_metrics.json]

Trains popularity, SASRec, the dual-graph model (URLLM's stage 1) and LLM4CDSR on the
real data, then RSLLM (SmolLM2 + LoRA, the dual-graph item table as soft tokens) on
top of the dual-graph exports, and scores every method on the SAME seeded test lines as
benchmarks/stage2_art_office.py (`sample_lines(n_test, --lines, seed)`). URLLM's rows
are merged from that benchmark's stage2_metrics.json when given (its LoRA and
generation take hours here, so they are not re-run).

Protocol of the 500-line table: each list is scored by the target's position in its
top 20 (MRR is MRR@20 for every row, as in the stage-2 table; HR and NDCG@10 are the
same as with full ranking). The stage-1 methods are also printed on every test line
with full ranking. Same seed, same numbers.

`--profile-users N` adds the row "llm4cdsr+profiles": N training users profiled by
SmolLM2 (urllm/methods/llm4cdsr_profiles.py, in --out/profiled) guide LLM4CDSR's training. Rows of
earlier invocations with the same --out and lines are kept in methods.json, so
methods can be run one at a time.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from urllm.data import load_dataset  # noqa: E402
from urllm.io import atomic_write_json  # noqa: E402
from urllm.llm.base import load_base_model  # noqa: E402
from urllm.llm.finetune import LoraTrainConfig  # noqa: E402
from urllm.llm.generate import GenerationConfig  # noqa: E402
from urllm.llm.prompt import PromptConfig  # noqa: E402
from urllm.methods import rsllm_run  # noqa: E402
from urllm.methods.rsllm import RSLLMConfig  # noqa: E402
from urllm.methods.urllm_stage2 import sample_lines  # noqa: E402
from urllm.metrics import summarize  # noqa: E402
from urllm.models.dual_graph import DualGraphConfig, DualGraphModel, ablation_config, sasrec_config  # noqa: E402
from urllm.models.evaluation import rank_examples  # noqa: E402
from urllm.models.export import export_stage1  # noqa: E402
from urllm.models.popularity import Popularity  # noqa: E402
from urllm.models.trainer import FitConfig, SequenceScorer, fit  # noqa: E402
from urllm.pipeline.config import resolve  # noqa: E402
from urllm.pipeline.context import dataset_graphs as _graphs  # noqa: E402
from urllm.pipeline.stages import _train_llm4cdsr  # noqa: E402
from urllm.seed import seed_everything  # noqa: E402

COLUMNS = ["HR@1", "HR@5", "HR@10", "HR@20", "NDCG@10", "MRR", "ood_rate", "valid_rate", "dup_rate"]
STAGE1 = ("pop", "sasrec", "dual_graph", "dual_graph_no_graph", "llm4cdsr")
SEQUENCE_MODELS = {"sasrec": sasrec_config, "dual_graph": DualGraphConfig, "dual_graph_no_graph": ablation_config}
TOP = 20  # the list length every method is scored on in the 500-line table


def capped(ranks: np.ndarray) -> np.ndarray:
    """Full-ranking ranks as positions in a top-20 list (inf beyond), the stage-2 protocol."""
    ranks = ranks.astype(float)
    ranks[ranks > TOP] = np.inf
    return ranks


def train_stage1(method: str, ds, graphs, cfg, out: Path):
    """(scorer, training seconds) of one stage-1 method; the dual-graph model's exports go to `out`."""
    seed_everything(cfg.seed)
    if method == "pop":
        return Popularity(ds, ds.splits["train"]), 0.0
    if method == "llm4cdsr":
        model, result = _train_llm4cdsr(cfg, ds, out)
    else:
        model = DualGraphModel(SEQUENCE_MODELS[method](), torch.from_numpy(ds.item_domain), graphs)
        result = fit(model, ds, dataclasses.replace(cfg.fit, seed=cfg.seed), method)
    print(f"{method}: best valid epoch {result.best_epoch} of {len(result.history)}, "
          f"valid MRR {result.best_valid['overall']['MRR']:.4f}, train {result.seconds:.0f} s", flush=True)
    if method == "dual_graph":
        export_stage1(model, ds, out)
    return SequenceScorer(model), result.seconds


def profile_users(ds, cfg, out: Path, n: int) -> Path:
    """Profiles of n seeded training users in out/profiled (the folder LLM4CDSR then
    trains in, so it reads them as guidance); the MiniLM item vectors are reused."""
    import shutil

    from urllm.methods.llm4cdsr_profiles import ProfileConfig, build_profiles, run_sequences, save_run_profiles
    from urllm.models.item_text import item_text_embeddings

    folder = out / "profiled"
    folder.mkdir(exist_ok=True)
    for cache in out.glob("item_text_*.safetensors"):
        shutil.copy(cache, folder / cache.name)
    pc = ProfileConfig(train_users=n)
    train, _ = run_sequences(ds, pc, [], cfg.seed)
    model, tok = load_base_model("smollm2")
    built = build_profiles(ds, train, item_text_embeddings(ds, "minilm", folder), model, tok, pc, cfg.seed)
    save_run_profiles(folder, built, {}, pc)
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/amazon-art-office"))
    parser.add_argument("--out", required=True, help="folder for the dual-graph exports, RSLLM's files and methods.json")
    parser.add_argument("--lines", type=int, default=500, help="seeded test lines of the comparison table")
    parser.add_argument("--epochs", type=int, default=FitConfig.epochs)
    parser.add_argument("--methods", nargs="*", default=[*STAGE1, "rsllm"], choices=[*STAGE1, "rsllm"])
    parser.add_argument("--embedder", default="minilm", choices=["minilm", "lm", "both"], help="LLM4CDSR item texts")
    parser.add_argument("--train-lines", type=int, default=400, help="RSLLM training lines (as stage 2's LoRA)")
    parser.add_argument("--text-steps", type=int, default=40, help="RSLLM stage 1 (text-only prompts)")
    parser.add_argument("--unified-steps", type=int, default=80, help="RSLLM stage 2 (soft-token prompts)")
    parser.add_argument("--beams", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=384, help="prompt token budget")
    parser.add_argument("--profile-users", type=int, default=0, help="also train LLM4CDSR guided by N users' profiles")
    parser.add_argument("--stage2", default="", help="stage2_metrics.json of benchmarks/stage2_art_office.py to merge")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ds = load_dataset(f"urllm:{args.data}")
    lines = sample_lines(len(ds.splits["test"]), args.lines, args.seed)
    cfg = resolve("demo", [f"seed={args.seed}", f"llm4cdsr.embedder={args.embedder}"])
    cfg.fit = FitConfig(epochs=args.epochs, seed=args.seed, progress=False)
    graphs = _graphs(ds)
    test = ds.splits["test"]
    subset = [test[i] for i in lines]
    table, full, train_s = {}, {}, {}
    previous = out / "methods.json"
    if previous.is_file() and json.loads(previous.read_text())["lines"] == lines:
        kept = json.loads(previous.read_text())
        table, full, train_s = kept["metrics"], kept["full_test"], kept["train_s"]
    for method in [m for m in args.methods if m in STAGE1]:
        scorer, train_s[method] = train_stage1(method, ds, graphs, cfg, out)
        ranks, domains, _ = rank_examples(scorer, ds, test)
        full[method] = summarize(ranks, domains, ds.domains)
        table[method] = summarize(capped(ranks[lines]), domains[lines], ds.domains)
        assert [ex.domain for ex in subset] == domains[lines].tolist()
    if args.profile_users:
        name, t0 = "llm4cdsr+profiles", time.perf_counter()
        profiled = profile_users(ds, cfg, out, args.profile_users)
        print(f"profiles: {args.profile_users} users in {time.perf_counter() - t0:.0f} s", flush=True)
        scorer, train_s[name] = train_stage1("llm4cdsr", ds, graphs, cfg, profiled)
        ranks, domains, _ = rank_examples(scorer, ds, test)
        full[name] = summarize(ranks, domains, ds.domains)
        table[name] = summarize(capped(ranks[lines]), domains[lines], ds.domains)
    if "rsllm" in args.methods:
        if not (out / "stage1_vectors.safetensors").is_file():
            raise SystemExit(f"{out}: no dual-graph exports; run with dual_graph among --methods first")
        vectors = load_file(out / "stage1_vectors.safetensors")
        test_top = load_file(out / "stage1_rankings.safetensors")["test_top"]
        model, tok = load_base_model("smollm2")
        rcfg = rsllm_run.RSLLMRunConfig(
            RSLLMConfig(text_steps=args.text_steps, unified_steps=args.unified_steps), LoraTrainConfig(),
            PromptConfig(max_tokens=args.max_tokens), GenerationConfig(num_beams=args.beams), args.train_lines, args.seed)
        result = rsllm_run.train_and_evaluate(ds, model, tok, vectors, test_top, lines, rcfg,
                                              progress=lambda xs: tqdm(xs, desc="RSLLM test lines", leave=False))
        rsllm_run.save(result, out / "rsllm")
        rep = result.report
        train_s["rsllm"] = rep["text_stage"]["seconds"] + rep["unified_stage"]["seconds"]
        table["rsllm"] = result.metrics
        print(f"rsllm: train {train_s['rsllm']:.0f} s (text {rep['text_stage']['seconds']:.0f} s, unified "
              f"{rep['unified_stage']['seconds']:.0f} s), {len(lines)} lines in {time.perf_counter() - start:.0f} s so far",
              flush=True)
    if args.stage2:
        stage2 = json.loads(Path(args.stage2).read_text())
        if stage2["lines"] != lines:
            raise SystemExit(f"{args.stage2}: its test lines differ from these {len(lines)} (another --lines or seed?)")
        for k, metrics in stage2["metrics"].items():
            for name, m in metrics.items():
                if name != "dual_graph":
                    table[f"{name} k={k}"] = m
    atomic_write_json(out / "methods.json", {"lines": lines, "metrics": table, "full_test": full, "train_s": train_s})

    print(f"\n{len(lines)} seeded test lines (the same for every row), lists scored in their top {TOP}")
    print(f"{'method':<26}" + "".join(f"{c:>11}" for c in COLUMNS) + f"{'train s':>10}")
    for name, m in table.items():
        seconds = f"{train_s[name]:>10.0f}" if name in train_s else f"{'–':>10}"
        print(f"{name:<26}" + "".join(f"{m['overall'][c]:>11.4f}" if c in m["overall"] else f"{'–':>11}" for c in COLUMNS)
              + seconds)
    if full:
        print(f"\nstage-1 methods on all {len(test)} test lines, full ranking (MRR over the whole domain)")
        for name, m in full.items():
            print(f"{name:<26}" + "".join(f"{m['overall'][c]:>11.4f}" for c in COLUMNS[:6]))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\ntotal {time.perf_counter() - start:.0f} s, peak RSS {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
