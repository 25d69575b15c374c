"""Every config and CLI value is checked before any stage runs (urllm/pipeline/config.py): numbers
finite and in range, enums, the base model and the dataset spec; train.py answers a bad
value with one line, exit 2, and leaves no run folder behind."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from urllm.pipeline.config import resolve

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("override, message", [
    ("fit.lr=nan", "fit.lr=nan: expected a finite number"),
    ("fit.lr=inf", "fit.lr=inf: expected a finite number"),
    ("fit.lr=0", "fit.lr=0.0: expected > 0"),
    ("fit.weight_decay=-1", "fit.weight_decay=-1.0: expected >= 0"),
    ("fit.epochs=0", "FitConfig.epochs=0: expected >= 1"),
    ("dual_graph.dropout=nan", "dual_graph.dropout=nan: expected a finite number"),
    ("llm.lora.lr=-inf", "llm.lora.lr=-inf: expected a finite number"),
    ("llm.k=-1", "llm.k=-1: expected >= 0"),
    ("llm.ks=[1,-2]", "llm.ks=[1, -2] (element -2): expected >= 0"),
    ("llm.ks=[]", "llm.ks=[]: expected at least one value"),
    ("llm.fusion_weights=[0,nan]", "expected a finite number"),
    ("llm.fusion_weights=[0,-1]", "(element -1.0): expected >= 0"),
    ("llm.train_lines=0", "llm.train_lines=0: expected >= 1"),
    ("top_n=0", "top_n=0: expected >= 1"),
    ("threads=0", "threads=0: expected >= 1"),
    ("seed=-3", "seed=-3: expected >= 0"),
    ("umap_neighbors=1", "umap_neighbors=1: expected >= 2"),
    ("profiles.test_lines=-1", "profiles.test_lines=-1: expected >= 0"),
    ("llm.generation.num_beams=0", "num_beams=0: must be >= 1"),
    ("llm.generation.dtype=int8", "dtype='int8'"),
    ("llm.generation.length_penalty=nan", "llm.generation.length_penalty=nan: expected a finite number"),
    ("llm.retrieval.index=lsh", "index='lsh'"),
    ("rsllm.temperature=0", "RSLLMConfig.temperature=0.0"),
    ("device=banana", "device='banana': expected auto, cpu, mps, cuda or cuda:N"),
    ("device=cuda:x", "device='cuda:x'"),
    ("llm.base_model=nosuch-model", "llm.base_model='nosuch-model': expected one of ['smollm2', 'tiny']"),
    ("fit.epochs=1e3", "bad value for fit.epochs"),
    ("dataset=nosuch", "unknown dataset source 'nosuch'"),
])
def test_bad_value_named_with_what_is_expected(override, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        resolve("tiny", [override])


@pytest.mark.parametrize("override", ["device=cpu", "device=cuda:1", "llm.k=0", "llm.generation.length_penalty=-0.5",
                                      "llm.fusion_weights=[0]", "fit.lr=0.01"])
def test_good_values_pass(override):
    resolve("tiny", [override])


@pytest.mark.parametrize("args, message", [
    (["--set", "fit.lr=nan"], "fit.lr=nan"),
    (["--set", "device=banana"], "device='banana'"),
    (["--dataset", "urllm:/no/such/release"], "/no/such/release"),
    (["--set", "llm.generation.num_beams=0"], "num_beams=0"),
])
def test_train_refuses_before_writing_anything(tmp_path, args, message):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "train.py", "--profile", "tiny", "--out", str(out), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not out.exists()  # the corrected command then starts clean


@pytest.mark.parametrize("profile", ["tiny", "demo", "full"])
def test_every_profile_passes_its_own_checks(profile):
    resolve(profile, [])


def test_config_and_train_help_load_no_torch():
    """The config tree is torch-free, so `train.py --help` (and a refused command) answers
    at once: checked by the modules loaded, not a clock (the suite shares the CPU)."""
    code = ("import sys, runpy; sys.argv = ['train.py', '--help']\n"
            "try:\n    runpy.run_path('train.py', run_name='__main__')\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "import urllm.pipeline.config\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torch_geometric', 'peft', 'transformers', 'faiss'))\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "usage: train.py" in out.stdout and "HEAVY []" in out.stdout, out.stdout[-2000:]
