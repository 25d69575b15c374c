"""torch-geometric's generated code (urllm/models/pyg_codegen.py): a model build in a fresh
process writes it under .cache/torch_geometric, not the system temp folder, and the
process removes it at exit."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from urllm.models.pyg_codegen import CODEGEN_DIR

ROOT = Path(__file__).resolve().parents[1]

BUILD = """
import json, tempfile
import torch
from urllm.models.dual_graph import DualGraphConfig, DualGraphModel
from urllm.models.pyg_codegen import generated_files
DualGraphModel(DualGraphConfig(dim=8, n_heads=1), torch.tensor([0, 0, 1, 1]), None)
print(json.dumps({"files": [str(p) for p in generated_files()], "tempdir": tempfile.gettempdir()}))
"""


def test_model_build_leaves_no_generated_code_in_temp(tmp_path):
    system_tmp = tmp_path / "tmp"
    system_tmp.mkdir()
    done = subprocess.run([sys.executable, "-c", BUILD], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=os.environ | {"TMPDIR": str(system_tmp)})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["tempdir"] == str(system_tmp)  # the child's temp folder is the isolated one
    files = [Path(f) for f in report["files"]]
    assert files, "the build generated no torch-geometric code: nothing was tested"
    assert all(f.parent == CODEGEN_DIR and f.name.startswith("torch_geometric.nn.conv.") for f in files)
    assert not any(f.exists() for f in files)  # removed when the process exited
    assert list(system_tmp.rglob("torch_geometric*")) == []  # and none went to the system temp folder
