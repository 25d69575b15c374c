"""Stage-2 quality on Art-Office: LoRA-tuned SmolLM2 with retrieved neighbours, every
generation variant beside the dual-graph model alone, on the same seeded test lines,
for several retrieval k.

    .venv/bin/python benchmarks/stage1_art_office.py --methods dual_graph --out artifacts/ao-stage1
    .venv/bin/python benchmarks/stage2_art_office.py --stage1 artifacts/ao-stage1 --lines 500 --ks 0 1 3

Lists are scored by the target's position in the top-20 list (MRR is MRR@20 for every
row). Generation is the slow part on a CPU: about 3 beam searches a line. The full
pipeline ("urllm") fuses the LLM's grounded items with the dual-graph list at a weight
chosen on `--valid-lines` validation lines (free-text search only there); a stage-1
folder without `valid_top` gets it from its saved dual-graph model.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from urllm.data import load_dataset  # noqa: E402
from urllm.io import atomic_write_json  # noqa: E402
from urllm.llm.base import load_base_model  # noqa: E402
from urllm.llm.finetune import LoraTrainConfig, add_lora, load_adapter, read_report, save_adapter, train_lora  # noqa: E402
from urllm.llm.generate import VARIANTS, GenerationConfig, Generator, for_generation  # noqa: E402
from urllm.llm.prompt import PromptBuilder, PromptConfig  # noqa: E402
from urllm.methods.retrieval import RetrievalConfig  # noqa: E402
from urllm.methods.urllm_stage2 import Neighbours, Stage2Config, choose_fusion_weight, evaluate_lines, sample_lines, training_examples  # noqa: E402

COLUMNS = ["HR@1", "HR@5", "HR@10", "HR@20", "NDCG@10", "MRR", "ood_rate", "valid_rate", "dup_rate"]


def valid_rankings(ds, stage1: Path, top_n: int) -> torch.Tensor:
    """valid_top from the folder's saved dual-graph model (older exports wrote test_top only)."""
    from urllm.models.evaluation import rank_examples
    from urllm.models.export import load_model
    from urllm.models.graphs import build_graphs
    from urllm.models.sequences import graph_sequences
    from urllm.models.trainer import SequenceScorer

    graphs = build_graphs(graph_sequences(ds.splits["train"]), ds.item_domain, ds.item_attributes)
    model = load_model(stage1, "dual_graph", torch.from_numpy(ds.item_domain), graphs)
    _, _, top = rank_examples(SequenceScorer(model), ds, ds.splits["valid"], top_n=top_n)
    return torch.from_numpy(top)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/amazon-art-office"))
    parser.add_argument("--stage1", required=True, help="folder with stage1_vectors / stage1_rankings .safetensors")
    parser.add_argument("--lines", type=int, default=500)
    parser.add_argument("--valid-lines", type=int, default=200, help="validation lines that choose the fusion weight")
    parser.add_argument("--ks", type=int, nargs="+", default=[0, 1, 3])
    parser.add_argument("--train-lines", type=int, default=400)
    parser.add_argument("--lora-steps", type=int, default=100)
    parser.add_argument("--beams", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=384, help="prompt token budget")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--retrieval", default="domain", choices=["domain", "mixed"])
    parser.add_argument("--out", default="", help="write the metrics JSON (and the adapter) here")
    parser.add_argument("--adapter", default="", help="reuse a LoRA adapter saved by an earlier run (its --out/lora)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    start = time.perf_counter()
    ds = load_dataset(f"urllm:{args.data}")
    stage1 = Path(args.stage1)
    vectors = load_file(stage1 / "stage1_vectors.safetensors")
    rankings = load_file(stage1 / "stage1_rankings.safetensors")
    test_top = rankings["test_top"]
    valid_top = rankings["valid_top"] if "valid_top" in rankings else valid_rankings(ds, stage1, test_top.shape[1])
    cfg = Stage2Config(train_lines=args.train_lines, eval_lines=args.lines, retrieval=RetrievalConfig(vector=args.retrieval),
                       prompt=PromptConfig(max_tokens=args.max_tokens), lora=LoraTrainConfig(steps=args.lora_steps),
                       generation=GenerationConfig(num_beams=args.beams))
    model, tok = load_base_model("smollm2")
    neighbours = Neighbours(ds, vectors, cfg.retrieval)
    builder = PromptBuilder(ds, tok, cfg.prompt)
    if args.adapter:
        model, report = load_adapter(model, Path(args.adapter)), read_report(Path(args.adapter))
        print(f"LoRA adapter reused from {args.adapter}", end=": ")
    else:
        examples = training_examples(ds, builder, neighbours, cfg)
        model = add_lora(model, cfg.lora)
        report = train_lora(model, tok, examples, cfg.lora)
        if args.out:
            save_adapter(model, Path(args.out) / "lora", report)
    print(f"LoRA {len(report['curve'])} steps, {report['seconds']:.0f} s, {report['tokens_per_s']:.0f} tokens/s,"
          f" loss {report['curve'][0]['loss']:.3f} -> {report['curve'][-1]['loss']:.3f}", flush=True)
    generator = Generator(for_generation(model, cfg.generation), tok, ds, cfg.generation)
    lines = sample_lines(len(ds.splits["test"]), cfg.eval_lines, cfg.seed)
    table, weights = {}, {}
    for k in args.ks:
        t0 = time.perf_counter()
        valid = sample_lines(len(ds.splits["valid"]), args.valid_lines, cfg.seed)
        _, valid_results = evaluate_lines(ds, generator, builder, neighbours, valid_top, valid, k, ("refined",),
                                          progress=lambda xs: tqdm(xs, desc=f"valid k={k}", leave=False), split="valid")
        weights[k], grid = choose_fusion_weight(ds, valid_results, valid_top, cfg.generation.top_k)
        print(f"k={k}: fusion weight {weights[k]} (valid HR@10 by weight: {grid})", flush=True)
        metrics, _ = evaluate_lines(ds, generator, builder, neighbours, test_top, lines, k, tuple(args.variants),
                                    progress=lambda xs: tqdm(xs, desc=f"k={k}", leave=False), fusion_weight=weights[k])
        table[k] = metrics
        print(f"k={k}: {len(lines)} lines in {time.perf_counter() - t0:.0f} s", flush=True)
        if args.out:  # after every k, so a long run stopped midway keeps what it measured
            Path(args.out).mkdir(parents=True, exist_ok=True)
            atomic_write_json(Path(args.out) / "stage2_metrics.json",
                              {"lines": lines, "fusion_weights": {str(j): w for j, w in weights.items()},
                               "metrics": {str(j): v for j, v in table.items()}})
    print(f"\n{len(lines)} test lines (seeded sample, the same for every row), retrieval vector: {args.retrieval}")
    print(f"{'method':<28}" + "".join(f"{c:>11}" for c in COLUMNS))
    for k, metrics in table.items():
        for name, m in metrics.items():
            if name == "dual_graph" and k != args.ks[0]:
                continue
            label = name if name == "dual_graph" else f"{name} k={k}"
            print(f"{label:<28}" + "".join(f"{m['overall'][c]:>11.4f}" if c in m["overall"] else f"{'–':>11}" for c in COLUMNS))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\ntotal {time.perf_counter() - start:.0f} s, peak RSS {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
