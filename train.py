"""Build a URLLM Studio run: data -> stage-1 models (pop, SASRec, dual-graph, its ablation,
LLM4CDSR with its LLM user profiles) -> retrieval -> LoRA -> URLLM generation -> RSLLM ->
evaluation -> projections, all under one folder the app reads.

    python train.py --profile tiny --out artifacts/tiny            # synthetic data, tiny random LM (tests)
    python train.py --out artifacts/demo                            # the demo profile: MovieLens, SmolLM2
    python train.py --dataset urllm:../shared/data/amazon-art-office --out artifacts/art-office
    python train.py --out artifacts/demo --set dual_graph.dim=32 --set llm.eval_lines=20
    torchrun --nproc_per_node=2 train.py --profile tiny --out artifacts/tiny-ddp   # LoRA stage on 2 ranks (DDP)
    torchrun --nproc_per_node=8 train.py --profile full --out artifacts/full      # 8 GPUs: nccl, one GPU per rank

Under torchrun rank 0 runs every stage and the other ranks join the LoRA fine-tune;
URLLM_DIST_TIMEOUT_MIN (default 30) bounds every collective and URLLM_DIST_WAIT_MIN
(default 1440) the other ranks' wait for rank 0 (urllm/pipeline/distributed.py).

Every stage is resumable: rerun the same command and finished stages whose config and
inputs are unchanged are reused. A folder holding a run with another config is refused
unless --force. See urllm/pipeline/config.py for every field and its default.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def parse_args(argv):
    from urllm.pipeline.config import PROFILES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="demo", help=f"one of {sorted(PROFILES)} (default demo)")
    parser.add_argument("--dataset", help="dataset spec; overrides the profile's (python -m urllm.data describe SPEC)")
    parser.add_argument("--out", required=True, help="run folder, e.g. artifacts/demo")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a config field by dotted path, e.g. fit.epochs=5 (repeatable)")
    parser.add_argument("--force", action="store_true", help="replace a run made with another config")
    return parser.parse_args(argv)


def go(decision: bool | None) -> bool:
    """Under torchrun, rank 0 tells the other ranks (decision None) whether the run starts,
    so a refused out dir stops them too instead of leaving them waiting; else True."""
    from urllm.pipeline import distributed

    if not distributed.active():
        return True if decision is None else decision
    return distributed.broadcast_flag(bool(decision))


def main(argv: list[str] | None = None) -> int:
    """Exit 0 when the run completes; 2 with one line on stderr for every bad value, bad
    input file, refused run folder or failed write (nothing written before the checks)."""
    args = parse_args(argv)
    from urllm.data import DataError, load_dataset
    from urllm.llm.checks import check_llm
    from urllm.pipeline import distributed
    from urllm.pipeline.config import resolve, to_dict
    from urllm.pipeline.stages import run_pipeline
    from urllm.pipeline.writer import Run, RunRefused

    try:
        overrides = ([f"dataset={args.dataset}"] if args.dataset else []) + args.set
        cfg = resolve(args.profile, overrides)
        check_llm(cfg.device, cfg.llm.base_model, cfg.llm.lora.target_modules)  # device, base model, LoRA layers
        rank = distributed.start(cfg.device)  # under torchrun: the process groups (their timeouts: distributed.py)
    except ValueError as err:  # DataError included: the spec is parsed here
        print(f"error: {err}", file=sys.stderr)
        return 2
    if rank > 0:  # under torchrun: rank 0 runs the stages, the others join the LoRA fine-tune
        from urllm.pipeline.stages import follower

        if not go(None):
            return 2  # rank 0 refused the out dir and said why
        follower(cfg, Path(args.out))
        return 0
    out, config = Path(args.out), to_dict(cfg) | {"profile": args.profile}
    try:
        Run.check(out, config, args.force)  # at once, before loading the data
        ds = load_dataset(cfg.dataset)  # before the folder exists: bad data leaves nothing behind
        run = Run(out, config, ROOT, force=args.force)
    except (RunRefused, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        go(False)
        return 2
    go(True)
    try:
        with run:
            metrics = run_pipeline(cfg, run, ds)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: writing the run in {run.dir} failed ({err}); the run stays marked incomplete", file=sys.stderr)
        return 2
    print(run.timing_table())
    print(json.dumps({m: round(v["overall"]["HR@10"], 4) for m, v in metrics.items()}))
    print(f"run complete: {run.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
