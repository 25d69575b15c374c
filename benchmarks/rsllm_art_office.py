"""RSLLM's stage alone, on a finished run's stage-1 files: its two-stage fine-tune and its
evaluation on every test line, timed as train.py's rsllm stage runs it (the same builder).

    .venv/bin/python benchmarks/rsllm_art_office.py --run artifacts/art-office

The run folder supplies what the stage reads (the dual-graph model, stage1_vectors and
stage1_rankings); the stage writes into a temporary folder, so the run is left as it
was. The config is train.py's for that run's profile and dataset (with `--set` as in
train.py). Prints training and test seconds, test lines/s, peak RSS, and HR@1/HR@10/MRR
with 95% intervals beside the run's own rsllm.json. Target on the 2-core dev machine
(issue 14): Art-Office's 2,000 test lines in at most 20 minutes, stage total.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from urllm.pipeline.config import resolve  # noqa: E402
from urllm.pipeline.context import Context  # noqa: E402
from urllm.pipeline.stages import build_rsllm  # noqa: E402

READS = ("dual_graph.safetensors", "dual_graph.config.json", "stage1_vectors.safetensors", "stage1_rankings.safetensors")


def _row(name: str, overall: dict) -> str:
    cells = []
    for m in ("HR@1", "HR@10", "MRR"):
        lo, hi = overall.get("ci95", {}).get(m, (float("nan"), float("nan")))
        cells.append(f"{m} {overall[m]:.4f} [{lo:.4f}, {hi:.4f}]")
    return f"  {name:<28} " + "  ".join(cells)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a run folder whose dual_graph stage finished")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="as train.py --set")
    args = parser.parse_args()

    run = Path(args.run)
    manifest = json.loads((run / "manifest.json").read_text())
    made = manifest["config"]
    cfg = resolve(made.get("profile", "demo"), [f"dataset={made['dataset']}", *args.set])
    missing = [name for name in READS if not (run / name).is_file()]
    if missing:
        print(f"{run}: missing {', '.join(missing)} (its dual_graph stage has not finished)", file=sys.stderr)
        return 2
    torch.set_num_threads(cfg.threads)
    with tempfile.TemporaryDirectory(prefix="rsllm-bench-") as tmp:
        out = Path(tmp)
        for name in READS:
            (out / name).symlink_to((run / name).resolve())
        ctx = Context(cfg, out)
        start = time.perf_counter()
        ds = ctx.ds
        loaded = time.perf_counter() - start
        result = build_rsllm(ctx)
        total = time.perf_counter() - start
        report = json.loads((out / "rsllm" / "training.json").read_text())
        mine = json.loads((out / "rsllm.json").read_text())["metrics"]["overall"]
    summary = result["summary"]
    print(f"run {run} ({made['dataset']}, {len(ds.splits['test'])} test lines), {summary['lines']} scored, "
          f"{cfg.threads} threads, generation dtype {cfg.llm.generation.dtype}, LoRA dtype {cfg.llm.lora.dtype}")
    print(f"  stage total {total:7.1f} s ({total / 60:.1f} min; data {loaded:.1f} s)")
    print(f"  training    {summary['train_s']:7.1f} s (text stage {report['text_stage']['seconds']:.1f} s, "
          f"unified stage {report['unified_stage']['seconds']:.1f} s)")
    print(f"  test        {report['eval_s']:7.1f} s ({summary['test_lines_per_s']:.2f} lines/s)")
    print(f"  peak RSS    {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:7.0f} MB")
    print(_row("this run of the stage", mine))
    theirs = run / "rsllm.json"
    if theirs.is_file():
        print(_row(f"{run}/rsllm.json", json.loads(theirs.read_text())["metrics"]["overall"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
