"""RSLLM's test-time speed on a run's test lines: its constrained beam search after the
soft prompt, with the LoRA adapter kept as a side branch (as before) and folded into the
weights (peft merge_adapter, the default now), one line at a time and batched.

    .venv/bin/python benchmarks/rsllm_speed.py --run artifacts/art-office --lines 50

Uses the run's base LM, RSLLM adapter and item projector, the dual-graph item table as
soft tokens, and the run's prompt and generation settings. Prints seconds per line of each
mode, how many lines give the same top-k lists as the first mode (bfloat16: folding the
adapter changes the rounding, so a near-tie may swap), and peak RSS. Lists are ranked in
the dual-graph top-k here (no full-rank completion: that costs the same in every mode).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from urllm.data import load_dataset  # noqa: E402
from urllm.llm.base import load_named  # noqa: E402
from urllm.llm.generate import GenerationConfig  # noqa: E402
from urllm.llm.prompt import PromptConfig  # noqa: E402
from urllm.methods import rsllm_run  # noqa: E402
from urllm.methods.urllm_stage2 import sample_lines  # noqa: E402


def evaluate(run: Path, config: dict, ds, vectors, test_top, lines, **generation):
    """(seconds, records) of RSLLM's evaluation with a freshly loaded model."""
    llm = config["llm"]
    model, tok = load_named(llm["base_model"], config["seed"])
    peft_model, projector, report = rsllm_run.load(model, run / "rsllm")
    gen = dataclasses.replace(GenerationConfig(**llm["generation"]), **generation)
    cfg = rsllm_run.RSLLMRunConfig(prompt=PromptConfig(**llm["prompt"]), generation=gen, seed=config["seed"])
    result = rsllm_run.RSLLMResult(peft_model, projector, None, report, {}, {})
    start = time.perf_counter()
    _, records = rsllm_run.evaluate(ds, result, tok, vectors, test_top, lines, cfg, report["placeholder"])
    return time.perf_counter() - start, records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run folder with an rsllm stage, e.g. artifacts/art-office")
    parser.add_argument("--lines", type=int, default=50, help="seeded sample of test lines")
    parser.add_argument("--batch", type=int, default=16, help="lines searched together")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    run = Path(args.run)
    config = json.loads((run / "manifest.json").read_text())["config"]
    ds = load_dataset(config["dataset"])
    vectors = load_file(run / "stage1_vectors.safetensors")
    test_top = load_file(run / "stage1_rankings.safetensors")["test_top"]
    lines = sample_lines(len(ds.splits["test"]), args.lines, 0)
    print(f"run {run}: {len(lines)} test lines, beams {config['llm']['generation']['num_beams']}, "
          f"dtype {config['llm']['generation']['dtype']}, {torch.get_num_threads()} threads")

    modes = [("adapter as a side branch, one line at a time (before)", dict(merge_adapter=False, batch_lines=1)),
             (f"adapter as a side branch, {args.batch} lines batched", dict(merge_adapter=False, batch_lines=args.batch)),
             (f"adapter folded in, {args.batch} lines batched (default)", dict(merge_adapter=True, batch_lines=args.batch))]
    first = None
    for name, changes in modes:
        seconds, records = evaluate(run, config, ds, vectors, test_top, lines, **changes)
        lists = [records[str(line)]["ranking"] for line in lines]
        first = first or lists
        same = sum(a == b for a, b in zip(first, lists))
        print(f"  {name:<58} {seconds / len(lines):6.3f} s/line  {len(lines) / seconds:6.2f} lines/s  "
              f"lists equal to the first mode {same}/{len(lines)}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
