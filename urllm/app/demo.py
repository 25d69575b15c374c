"""`make demo`: build (or finish) the demo-profile run on the embedded MovieLens data if it
is not complete, then start the app on 127.0.0.1."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", default="artifacts/demo")
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default="8501")
    args = parser.parse_args()
    run = ROOT / args.run
    manifest = run / "manifest.json"
    if not manifest.exists() or not json.loads(manifest.read_text()).get("complete"):
        print(f"building (or resuming) the {args.profile} run in {run} ...", flush=True)
        code = subprocess.call([sys.executable, "train.py", "--profile", args.profile, "--out", str(run)], cwd=ROOT)
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
