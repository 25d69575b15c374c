"""Command line of the dataset layer.

    python -m urllm.data describe SPEC [--json]

SPEC is a dataset spec (see urllm/data/spec.py), e.g. `movielens`,
`urllm:../shared/data/amazon-art-office`, `amazon:DIR:Arts_Crafts_and_Sewing,Office_Products`.
"""
from __future__ import annotations

import argparse
import json
import sys

from urllm.data.errors import DataError
from urllm.data.spec import timed_load


def format_description(d: dict, seconds: float) -> str:
    a, b = d["domains"]
    seq = d["sequence_length"]
    lines = [
        f"dataset        {d['spec']}  (loaded in {seconds:.2f} s)",
        f"domains        A = {a}, B = {b}",
        f"users          {d['n_users']:,} ({d['users_in_both_domains']:,} active in both domains)",
        f"items          {a}: {d['n_items'][a]:,}   {b}: {d['n_items'][b]:,}",
        f"interactions   {d['n_interactions']:,}  ({a}: {d['n_interactions_per_domain'][a]:,}, {b}: {d['n_interactions_per_domain'][b]:,})",
        "sequence len   " + "  ".join(f"{k}={v:g}" for k, v in seq.items()),
        "splits         lines (users)   targets per domain",
    ]
    for s, n in d["splits"].items():
        t = d["targets_per_domain"][s]
        lines.append(f"  {s:<12} {n:>6,} ({d['split_users'][s]:,})   {a}: {t[a]:,}  {b}: {t[b]:,}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m urllm.data", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    describe = sub.add_parser("describe", help="print the figures of a dataset")
    describe.add_argument("spec", help="dataset spec, e.g. movielens or urllm:DIR")
    describe.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    args = parser.parse_args(argv)
    try:
        dataset, seconds = timed_load(args.spec)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    figures = dataset.describe()
    if args.json:
        print(json.dumps(figures | {"load_seconds": round(seconds, 3)}))
    else:
        print(format_description(figures, seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
