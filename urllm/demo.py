"""`make demo`: build the default run on the embedded MovieLens data if it is missing,
then start the app on 127.0.0.1."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", default="artifacts/demo")
    parser.add_argument("--dataset", default="movielens")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default="8501")
    args = parser.parse_args()
    run = ROOT / args.run
    if not (run / "manifest.json").exists():
        print(f"building the demo run in {run} ...", flush=True)
        code = subprocess.call([sys.executable, "train.py", "--dataset", args.dataset, "--out", str(run)], cwd=ROOT)
        if code:
            return code
    print(f"starting the app on http://{args.host}:{args.port}", flush=True)
    return subprocess.call(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", args.host,
         "--server.port", str(args.port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT,
    )


if __name__ == "__main__":
    sys.exit(main())
