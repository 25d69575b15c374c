"""Load time and peak memory of the dataset sources, each in a fresh process.

    .venv/bin/python benchmarks/data_load.py [SPEC ...]

Default specs: movielens and urllm:../shared/data/amazon-art-office. Target on the
2-core dev machine: each loads in under 5 s and under 1 GB (peak RSS of the process,
Python and imports included).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPECS = ["movielens", f"urllm:{ROOT.parent / 'shared/data/amazon-art-office'}"]

CHILD = """
import json, resource, sys, time
from urllm.data import load_dataset
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
ds = load_dataset(sys.argv[1])
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
d = ds.describe()
print(json.dumps({"seconds": seconds, "peak_rss_mb": peak / 1024, "imports_rss_mb": base / 1024,
                  "users": d["n_users"], "interactions": d["n_interactions"]}))
"""


def main(specs: list[str]) -> int:
    print(f"{'spec':<48} {'load s':>7} {'peak RSS MB':>12} {'after imports MB':>17} {'users':>7} {'interactions':>13}")
    ok = True
    for spec in specs:
        out = subprocess.run([sys.executable, "-c", CHILD, spec], cwd=ROOT, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{spec:<48} failed: {out.stderr.strip().splitlines()[-1]}")
            ok = False
            continue
        r = json.loads(out.stdout)
        flag = "" if r["seconds"] < 5 and r["peak_rss_mb"] < 1024 else "  <- over target (5 s, 1 GB)"
        print(
            f"{spec[-48:]:<48} {r['seconds']:>7.2f} {r['peak_rss_mb']:>12.0f} {r['imports_rss_mb']:>17.0f}"
            f" {r['users']:>7,} {r['interactions']:>13,}{flag}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or DEFAULT_SPECS))
