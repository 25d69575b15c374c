"""Stage-1 benchmark: popularity, SASRec, the dual-graph model and its ablation trained and
evaluated on the real Art-Office data, printed beside the paper's rows (Table 3).

    .venv/bin/python benchmarks/stage1_art_office.py [--data DIR] [--epochs N] [--methods ...]

Full ranking over all items of the target domain, 2,000 test lines; model selection on
the valid split only. Prints training and evaluation time and peak memory (targets on the
2-core dev machine: the whole script under 20 minutes and 6 GB). Same seed, same numbers.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from urllm.data import load_dataset  # noqa: E402
from urllm.models.dual_graph import DualGraphConfig, DualGraphModel, ablation_config, sasrec_config  # noqa: E402
from urllm.models.evaluation import evaluate  # noqa: E402
from urllm.models.export import export_stage1, save_model  # noqa: E402
from urllm.models.graphs import build_graphs  # noqa: E402
from urllm.models.popularity import Popularity  # noqa: E402
from urllm.models.sequences import graph_sequences  # noqa: E402
from urllm.models.trainer import FitConfig, SequenceScorer, fit  # noqa: E402
from urllm.seed import seed_everything  # noqa: E402

PAPER = {  # Table 3 of the URLLM paper, as listed in the data README
    "paper SASRec": {"HR@1": .0055, "HR@5": .0120, "HR@10": .0175, "HR@20": .0235, "MRR": .0100, "NDCG@5": .0069, "NDCG@10": .0084, "NDCG@20": .0108},
    "paper C2DSR": {"HR@1": .0155, "HR@5": .0275, "HR@10": .0320, "HR@20": .0415, "MRR": .0229, "NDCG@5": .0219, "NDCG@10": .0234, "NDCG@20": .0257},
    "paper dual-graph alone": {"HR@1": .0265, "MRR": .0322},
    "paper URLLM (LLaMA2-7B)": {"HR@1": .0270, "HR@5": .0400, "HR@10": .0485, "HR@20": .0595, "MRR": .0355, "NDCG@5": .0353, "NDCG@10": .0371, "NDCG@20": .0399},
}
COLUMNS = ["HR@1", "HR@5", "HR@10", "HR@20", "MRR", "NDCG@5", "NDCG@10", "NDCG@20"]
MODELS = {"sasrec": sasrec_config, "dual_graph": DualGraphConfig, "dual_graph_no_graph": ablation_config}


def row(name: str, metrics: dict, extra: str = "") -> str:
    cells = [f"{metrics[c]:.4f}" if c in metrics else "   –  " for c in COLUMNS]
    return f"{name:<26} " + " ".join(f"{c:>7}" for c in cells) + (f"  {extra}" if extra else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/amazon-art-office"))
    parser.add_argument("--epochs", type=int, default=FitConfig.epochs)
    parser.add_argument("--methods", nargs="+", default=["pop", *MODELS], choices=["pop", *MODELS])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--export", default="", help="save the dual-graph model and its exports here (for stage 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    dataset = load_dataset(f"urllm:{args.data}")
    train = dataset.splits["train"]
    graphs = build_graphs(graph_sequences(train), dataset.item_domain, dataset.item_attributes)
    print(f"data + graphs: {time.perf_counter() - start:.1f} s; {len(dataset.splits['test'])} test lines")
    results, times = {}, {}
    for method in args.methods:
        if method == "pop":
            scorer, fit_s = Popularity(dataset, train), 0.0
        else:
            seed_everything(args.seed)
            model = DualGraphModel(MODELS[method](), torch.from_numpy(dataset.item_domain), graphs)
            result = fit(model, dataset, FitConfig(epochs=args.epochs, seed=args.seed, progress=False), method)
            fit_s = result.seconds
            print(f"{method}: best valid epoch {result.best_epoch} of {len(result.history)}, valid MRR {result.best_valid['overall']['MRR']:.4f}")
            scorer = SequenceScorer(model)
            if method == "dual_graph" and args.export:
                export_dir = Path(args.export)
                save_model(model, export_dir, method)
                export_stage1(model, dataset, export_dir)
                print(f"exported to {export_dir}")
        t1 = time.perf_counter()
        results[method] = evaluate(scorer, dataset, "test")
        times[method] = (fit_s, time.perf_counter() - t1)
        print(f"{method}: train {fit_s:.0f} s, test eval {times[method][1]:.1f} s", flush=True)

    print()
    print(f"{'method':<26} " + " ".join(f"{c:>7}" for c in COLUMNS))
    for name, metrics in PAPER.items():
        print(row(name, metrics))
    for method, res in results.items():
        print(row(f"ours {method}", res["overall"], f"train {times[method][0]:.0f} s, eval {times[method][1]:.1f} s"))
    for method, res in results.items():
        for part in dataset.domains:
            print(row(f"  {method} [{part}, n={res[part]['n']}]", res[part]))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\ntotal {time.perf_counter() - start:.0f} s, peak RSS {peak:.0f} MB, {results[next(iter(results))]['n_test_lines']} test lines")
    if "dual_graph" in results:
        ours, c2dsr = results["dual_graph"]["overall"], PAPER["paper C2DSR"]
        print("dual_graph >= paper dual-graph alone (HR@1, MRR):",
              ours["HR@1"] >= PAPER["paper dual-graph alone"]["HR@1"] and ours["MRR"] >= PAPER["paper dual-graph alone"]["MRR"])
        print("dual_graph > paper C2DSR on every metric:", all(ours[c] > c2dsr[c] for c in COLUMNS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
