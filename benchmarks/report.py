"""A run's metrics as the README prints them: every method on the same test lines, each
metric with its 95% interval, and the paired difference to the dual-graph model with its
p-value (urllm/stats.py; computed by train.py's evaluation stage).

    .venv/bin/python benchmarks/report.py --run artifacts/demo
    .venv/bin/python benchmarks/report.py --run artifacts/art-office --metrics HR@1 HR@10 MRR --scope office

Reads the run's manifest only (no model, no torch); prints a markdown table, the line set,
and the stage times of the LLM stages.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from urllm.app.case_study import ordered_methods  # noqa: E402
from urllm.stats import REFERENCE  # noqa: E402


def cell(part: dict, metric: str) -> str:
    lo, hi = part["ci95"][metric]
    return f"{part[metric]:.4f} [{lo:.4f}, {hi:.4f}]"


def diff(part: dict, metric: str) -> str:
    test = part.get("vs_dual_graph", {}).get(metric)
    if test is None:
        return "–"
    p = test["p"]
    return f"{test['delta']:+.4f} (p {'<.001' if p < 0.001 else f'{p:.3f}'})"


def table(metrics: dict, names: list[str], scope: str) -> str:
    head = ["method", *[f"{m} [95% CI]" for m in names], *[f"Δ{m} vs dual_graph (p)" for m in names]]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method in ordered_methods(metrics):
        part = metrics[method][scope]
        deltas = ["–"] * len(names) if method == REFERENCE else [diff(part, m) for m in names]
        rows.append("| " + " | ".join([method, *[cell(part, m) for m in names], *deltas]) + " |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run folder, e.g. artifacts/demo")
    parser.add_argument("--metrics", nargs="+", default=["HR@1", "HR@10", "NDCG@10", "MRR"])
    parser.add_argument("--scope", default="overall", help="overall or a domain name")
    args = parser.parse_args()
    manifest = json.loads((Path(args.run) / "manifest.json").read_text())
    metrics = manifest.get("metrics") or {}
    if not metrics or "ci95" not in next(iter(metrics.values()))["overall"]:
        print(f"error: {args.run}: no metrics with intervals (an incomplete run, or one made before the evaluation stage)",
              file=sys.stderr)
        return 2
    lines = next(iter(metrics.values()))["lines"]
    print(f"run {Path(args.run).name} ({manifest['dataset']['spec']}): every method on {lines['set']} "
          f"({lines['n']} of {lines['of']}), scope {args.scope}\n")
    print(table(metrics, args.metrics, args.scope))
    stages = {s["name"]: s for s in manifest["stages"]}
    total = sum(s["seconds"] for s in manifest["stages"])
    print("\nstage seconds: " + ", ".join(f"{n} {s['seconds']:.0f}" for n, s in stages.items()) + f"; total {total:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
