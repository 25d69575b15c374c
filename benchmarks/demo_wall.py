"""`make demo` from a fresh clone: seconds until the app answers, peak RSS, stage times.

    .venv/bin/python benchmarks/demo_wall.py [--port 8599] [--keep]

Clones this checkout (committed state) into a temporary folder with ../shared beside it,
runs `make demo` there, polls the app's health endpoint on 127.0.0.1, then stops the app
and prints the wall time to the first answer, the peak RSS of the process tree (sampled
every second) and each stage's seconds from the run's manifest. Run it on a quiet
machine: on 2 cores anything else running shows up in every number.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def tree_rss(proc: psutil.Process) -> int:
    """Bytes resident in `proc` and every descendant now (vanished processes count 0)."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8599)
    parser.add_argument("--timeout", type=float, default=3600, help="give up after this many seconds")
    parser.add_argument("--keep", action="store_true", help="keep the temporary clone (its run folder)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="demo-wall-"))
    clone = tmp / "main"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    (tmp / "shared").symlink_to((ROOT.parent / "shared").resolve())
    log = (tmp / "make-demo.log").open("w")
    start = time.monotonic()
    make = psutil.Popen(["make", "demo", f"PORT={args.port}"], cwd=clone, stdout=log, stderr=subprocess.STDOUT,
                        start_new_session=True)
    peak, answered = 0, None
    while time.monotonic() - start < args.timeout:
        peak = max(peak, tree_rss(make))
        if make.poll() is not None:
            break
        if answers(args.port):
            answered = time.monotonic() - start
            break
        time.sleep(1)
    for p in make.children(recursive=True):
        p.terminate()
    make.terminate()
    make.wait(30)
    log.close()

    print(f"clone: {clone}")
    if answered is None:
        print(f"the app did not answer (make exit {make.returncode}); log: {tmp / 'make-demo.log'}")
        return 1
    print(f"app answered after {answered:.0f} s ({answered / 60:.1f} min); peak RSS of the tree {peak / 2**30:.2f} GB")
    manifest = json.loads((clone / "artifacts/demo/manifest.json").read_text())
    for stage in manifest.get("stages", []):
        print(f"  {stage.get('name', '?'):<24} {stage.get('seconds', float('nan')):8.1f} s")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
