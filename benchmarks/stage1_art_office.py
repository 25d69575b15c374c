"""Stage-1 benchmark: every stage-1 method of train.py trained and evaluated on the real
Art-Office data by the pipeline's own stage builders, printed beside the paper's rows
(Table 3), with 95% intervals and the paired difference to the dual-graph model.

    .venv/bin/python benchmarks/stage1_art_office.py [--data DIR] [--methods ...] [--set FIELD=VALUE ...]

The config is train.py's demo profile on that dataset (`--set` as in train.py), so the
numbers are the ones `train.py --dataset urllm:DIR` writes. Full ranking over all items of
the target domain, 2,000 test lines; tuning and model selection on the valid split only.
Prints each method's time, peak RSS (target on the 2-core dev machine: the default
methods in at most 30 minutes), the dual-graph model against the best baseline (pop,
itemknn, sasrec: the strongest on test MRR, the hardest opponent) with a paired sign-flip
p, and the same tables with the user's own history items left out of the ranking.
llm4cdsr is opt-in (`--methods ... llm4cdsr`): its profiles stage runs the LLM.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from urllm.pipeline.config import resolve  # noqa: E402
from urllm.pipeline.context import Context  # noqa: E402
from urllm.pipeline.stages import STAGE_TABLE  # noqa: E402
from urllm.schema import STAGE1_METHODS  # noqa: E402
from urllm.stats import compare  # noqa: E402

PAPER = {  # Table 3 of the URLLM paper, as listed in the data README
    "paper SASRec": {"HR@1": .0055, "HR@5": .0120, "HR@10": .0175, "HR@20": .0235, "MRR": .0100, "NDCG@5": .0069, "NDCG@10": .0084, "NDCG@20": .0108},
    "paper C2DSR": {"HR@1": .0155, "HR@5": .0275, "HR@10": .0320, "HR@20": .0415, "MRR": .0229, "NDCG@5": .0219, "NDCG@10": .0234, "NDCG@20": .0257},
    "paper dual-graph alone": {"HR@1": .0265, "MRR": .0322},
    "paper URLLM (LLaMA2-7B)": {"HR@1": .0270, "HR@5": .0400, "HR@10": .0485, "HR@20": .0595, "MRR": .0355, "NDCG@5": .0353, "NDCG@10": .0371, "NDCG@20": .0399},
}
COLUMNS = ["HR@1", "HR@5", "HR@10", "HR@20", "MRR", "NDCG@5", "NDCG@10", "NDCG@20"]
BASELINES = ("pop", "itemknn", "sasrec")
DEFAULT = tuple(m for m in STAGE1_METHODS if m != "llm4cdsr")
NEEDS = {"dual_graph_readout_only": ("dual_graph",), "llm4cdsr": ("profiles",)}  # stages a method's builder reads


def row(name: str, metrics: dict, extra: str = "") -> str:
    cells = [f"{metrics[c]:.4f}" if c in metrics else "   –  " for c in COLUMNS]
    return f"{name:<30} " + " ".join(f"{c:>7}" for c in cells) + (f"  {extra}" if extra else "")


def interval_table(title: str, stats: dict, order: list[str]) -> None:
    print(f"\n{title} (95% bootstrap interval; difference to dual_graph on the same lines, sign-flip p)")
    for m in order:
        o = stats[m]["overall"]
        cells = [f"{k} {o[k]:.4f} [{o['ci95'][k][0]:.4f}, {o['ci95'][k][1]:.4f}]" for k in ("HR@1", "HR@10", "MRR")]
        if m != "dual_graph" and "vs_dual_graph" in o:
            cells.append("vs dual_graph " + ", ".join(f"{k} {o['vs_dual_graph'][k]['delta']:+.4f} (p {o['vs_dual_graph'][k]['p']:.3f})"
                                                      for k in ("HR@1", "MRR")))
        print(f"  {m:<24} " + "  ".join(cells))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/amazon-art-office"))
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT), choices=list(STAGE1_METHODS))
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="as train.py --set")
    parser.add_argument("--out", default="", help="keep the stage files here (default: a temporary folder)")
    args = parser.parse_args()
    cfg = resolve("demo", [f"dataset=urllm:{args.data}", *args.set])
    torch.set_num_threads(cfg.threads)
    builders = {stage.name: stage.build for stage in STAGE_TABLE}
    needed = {n for m in args.methods for n in NEEDS.get(m, ())}
    wanted = [stage.name for stage in STAGE_TABLE if stage.name in args.methods or stage.name in needed]  # in run order
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="stage1-bench-") as tmp:
        out = Path(args.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        ctx = Context(cfg, out)
        ds = ctx.ds
        print(f"data: {time.perf_counter() - start:.1f} s; {len(ds.splits['test'])} test lines, {cfg.threads} threads")
        seconds, summaries, files = {}, {}, {}
        for name in wanted:
            t0 = time.perf_counter()
            summaries[name] = builders[name](ctx)["summary"]
            seconds[name] = time.perf_counter() - t0
            print(f"{name}: {seconds[name]:.1f} s  {json.dumps({k: v for k, v in summaries[name].items() if k != 'grid'})}",
                  flush=True)
            if name in STAGE1_METHODS:
                files[name] = json.loads((out / f"{name}.json").read_text())
    total = time.perf_counter() - start
    methods = [m for m in STAGE1_METHODS if m in files]
    domains = np.array([ex.domain for ex in ds.splits["test"]])
    with_history = compare({m: np.array(files[m]["test_ranks"], float) for m in methods}, domains, ds.domains, cfg.seed)
    without = compare({m: np.array(files[m]["test_ranks_excluding_history"], float) for m in methods}, domains, ds.domains,
                      cfg.seed)

    for name in ("itemknn", "sasrec"):
        if name in summaries:
            print(f"\n{name} grid on valid (chosen {summaries[name]['chosen']}):")
            for point in summaries[name]["grid"]:
                print("  ", point)
    print(f"\n{'method':<30} " + " ".join(f"{c:>7}" for c in COLUMNS))
    for name, metrics in PAPER.items():
        print(row(name, metrics))
    for m in methods:
        print(row(f"ours {m}", with_history[m]["overall"], f"{seconds[m]:.0f} s"))
    interval_table("Rankings over every item of the domain, the user's history included (the protocol, as the paper)",
                   with_history, methods)
    interval_table("Rankings with the user's own history items left out", without, methods)
    repeats = sum(int(ex.target in set(ex.history.tolist())) for ex in ds.splits["test"])
    print(f"  ({repeats} of {len(domains)} test targets are items of the user's own history: left out, they count as misses)")
    if "dual_graph" in methods and any(b in methods for b in BASELINES):
        for title, stats in (("history included", with_history), ("history left out", without)):
            best = max((b for b in BASELINES if b in methods), key=lambda b: stats[b]["overall"]["MRR"])
            vs = stats[best]["overall"]["vs_dual_graph"]
            print(f"dual_graph against the best baseline ({best}), {title}: "
                  + ", ".join(f"{k} {-vs[k]['delta']:+.4f} [{-vs[k]['ci95'][1]:.4f}, {-vs[k]['ci95'][0]:.4f}] p {vs[k]['p']:.4f}"
                              for k in ("HR@1", "HR@10", "MRR")))
    for b in BASELINES:
        if b in methods and b != "pop" and "pop" in methods:
            below = [k for k in COLUMNS if with_history[b]["overall"][k] < with_history["pop"]["overall"][k]]
            print(f"{b} below popularity on: {', '.join(below) or 'no metric'}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\ntotal {total:.0f} s ({total / 60:.1f} min), peak RSS {peak:.0f} MB, {len(domains)} test lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
