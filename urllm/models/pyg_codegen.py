"""Where torch-geometric's generated code goes.

On the first build of each MessagePassing class in a process, torch-geometric renders a
jinja template of its `propagate` into a `.py` file made with
`tempfile.NamedTemporaryFile(delete=False)` (torch_geometric/template.py, 2.8) and
imports it, but never removes it: each training process left a
`torch_geometric.nn.conv.lg_conv_LGConv_propagate_*.py` in /tmp. There is no setting
for it, so builds go through `generated_code_in_cache()`: while it is open, tempfile's
default folder is <repo>/.cache/torch_geometric (git-ignored), and the files of this
process are removed when it exits (a killed process leaves its file there, not in /tmp).
"""
from __future__ import annotations

import atexit
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

CODEGEN_DIR = Path(__file__).resolve().parents[2] / ".cache" / "torch_geometric"


@contextmanager
def generated_code_in_cache():
    """Build torch-geometric convs inside this. tempfile.tempdir is process-wide, so it is
    set only for the moment of the build and restored after."""
    saved = tempfile.tempdir
    try:
        CODEGEN_DIR.mkdir(parents=True, exist_ok=True)
        tempfile.tempdir = str(CODEGEN_DIR)
    except OSError:
        pass  # a read-only checkout: the file goes to the system temp folder, still removed at exit
    try:
        yield
    finally:
        tempfile.tempdir = saved


def generated_files() -> list[Path]:
    """The generated-code files behind this process's modules: torch-geometric names each
    `<module name>_<random>.py` (the NamedTemporaryFile prefix), in a temp folder."""
    folders = {CODEGEN_DIR, Path(tempfile.gettempdir())}
    files = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and Path(path).parent in folders and Path(path).name.startswith(f"{name}_"):
            files.append(Path(path))
    return files


@atexit.register
def _remove_generated_files() -> None:
    for path in generated_files():
        path.unlink(missing_ok=True)
