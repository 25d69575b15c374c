"""Build a URLLM Studio run: data -> models -> evaluation -> artifacts the app reads.

    python train.py --dataset movielens --out artifacts/demo
    python train.py --dataset urllm:../shared/data/amazon-art-office --out artifacts/art-office

Stages land one issue at a time; today the run holds the data stage: the dataset's
figures (`dataset.json`) and a manifest with the resolved config, versions and file
hashes. The model, retrieval, LLM and evaluation stages come next (issues 3-5).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from urllm.data import DataError, load_dataset
from urllm.io import atomic_write_json
from urllm.manifest import file_record, new_manifest, read_manifest, write_manifest

ROOT = Path(__file__).resolve().parent


@dataclass
class TrainConfig:
    dataset: str = "movielens"  # dataset spec, see `python -m urllm.data describe --help`
    out: str = "artifacts/demo"  # run folder
    seed: int = 0  # seed of every random choice


def run_data_stage(cfg: TrainConfig, run_dir: Path, manifest: dict) -> None:
    start = time.perf_counter()
    dataset = load_dataset(cfg.dataset)
    figures = dataset.describe()
    atomic_write_json(run_dir / "dataset.json", figures)
    seconds = time.perf_counter() - start
    manifest["dataset"] = {"spec": cfg.dataset, "describe": figures}
    manifest["stages"] = [s for s in manifest["stages"] if s["name"] != "data"] + [
        {"name": "data", "seconds": round(seconds, 3), "files": [file_record(run_dir / "dataset.json", run_dir)]}
    ]
    write_manifest(run_dir, manifest)
    print(f"[data] {figures['n_users']:,} users, {figures['n_interactions']:,} interactions, splits {figures['splits']} ({seconds:.1f} s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(TrainConfig):
        parser.add_argument(f"--{f.name}", type=type(f.default), default=f.default)
    cfg = TrainConfig(**vars(parser.parse_args(argv)))
    run_dir = Path(cfg.out)
    config = dataclasses.asdict(cfg)
    manifest = new_manifest(config, ROOT)
    if (run_dir / "manifest.json").exists():
        old = read_manifest(run_dir)
        if old.get("config") != config:
            print(f"error: {run_dir} holds a run with another config; pick another --out", file=sys.stderr)
            return 2
        manifest = old
    try:
        run_data_stage(cfg, run_dir, manifest)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"run written to {run_dir} (data stage only: model stages arrive with issues 3-5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
