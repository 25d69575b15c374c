"""train.py end to end on the tiny profile: every method in the manifest, files hashed,
resume after a kill, refusal of another config, clear errors."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from urllm.pipeline.config import resolve, set_field
from urllm.pipeline.manifest import file_record
from urllm.schema import STAGES

ROOT = Path(__file__).resolve().parents[1]
METHODS = {"pop", "itemknn", "sasrec", "dual_graph", "dual_graph_no_graph", "dual_graph_readout_only", "llm4cdsr", "urllm",
           "urllm_free", "urllm_constrained", "urllm_candidates", "urllm_refined", "urllm_rerank", "rsllm"}


def train(out: Path, *extra: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "train.py", "--profile", "tiny", "--out", str(out), *extra], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    start = time.perf_counter()
    done = train(out)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done, time.perf_counter() - start


def test_tiny_run_manifest_has_every_method_and_hashed_files(tiny_run):
    out, done, seconds = tiny_run
    print(f"tiny profile: {seconds:.0f} s")  # a figure, not a timed assertion (speed targets live in benchmarks)
    m = json.loads((out / "manifest.json").read_text())
    assert m["complete"] is True and m["schema_version"] == 1 and m["git_commit"]
    assert m["config"]["profile"] == "tiny" and m["config"]["dual_graph"]["dim"] == 16
    assert m["dataset"]["describe"]["n_users"] == 120
    assert set(m["metrics"]) == METHODS
    for method, res in m["metrics"].items():
        assert res["n_test_lines"] > 0
        for part in ("overall", "art", "office"):
            for name in ("HR@1", "HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20", "MRR"):
                assert 0.0 <= res[part][name] <= 1.0, (method, part, name)
        if method.startswith("urllm_") or method == "rsllm":
            assert all(0.0 <= res["overall"][r] <= 1.0 for r in ("ood_rate", "valid_rate", "dup_rate"))
    assert m["metrics"]["urllm_constrained"]["overall"]["ood_rate"] == 0.0
    assert m["metrics"]["rsllm"]["overall"]["ood_rate"] == 0.0  # RSLLM decodes inside the title trie
    rsllm, gens = (json.loads((out / f).read_text()) for f in ("rsllm.json", "generations.json"))
    assert rsllm["lines"] == gens["lines"]  # RSLLM is scored on URLLM's test lines
    assert m["metrics"]["rsllm"]["n_test_lines"] == len(gens["lines"])
    rerank = json.loads((out / "rerank.json").read_text())
    assert rerank["lines"] == gens["lines"] and len(rerank["ranks"]) == len(rerank["lines"])
    assert str(rerank["weight"]) in rerank["valid"]["MRR"] and rerank["valid"]["lines"] > 0
    assert m["metrics"]["urllm_rerank"]["overall"]["fusion_weight"] == rerank["weight"]
    for line, record in rerank["records"].items():  # a reordering of the dual-graph top-N
        assert sorted(record["ranking"]) == sorted(record["candidates"]), line
    names = [s["name"] for s in m["stages"]]
    assert names == ["data", "pop", "itemknn", "sasrec", "dual_graph", "dual_graph_no_graph", "dual_graph_readout_only",
                     "profiles", "llm4cdsr", "retrieval", "lora", "generation", "rerank", "rsllm", "evaluation",
                     "projections"]
    for stage in m["stages"]:
        for f in stage["files"]:
            assert file_record(out / f["path"], out) == f  # sha256 and size match the file on disk
    assert "python" in m["versions"] and m["versions"]["torch"].startswith("2.13")
    assert "total" in done.stdout  # the closing table of stage times


def test_every_method_on_every_test_line_with_intervals_and_paired_tests(tiny_run):
    """The tiny run scores every method on all its test lines: one line count, one rank per
    line and method in line_ranks.json, and for every scope a 95% interval around the
    value and the paired difference to the dual-graph model."""
    out, _, _ = tiny_run
    m = json.loads((out / "manifest.json").read_text())
    data = json.loads((out / "data.json").read_text())
    n_test = len(data["lines"]["test"])
    table = json.loads((out / "line_ranks.json").read_text())
    assert table["lines"] == list(range(n_test)) and set(table["methods"]) == METHODS
    for method, ranks in table["methods"].items():
        assert len(ranks) == n_test and all(isinstance(r, int) and r >= 1 for r in ranks), method
    assert json.loads((out / "evaluation.json").read_text()) == m["metrics"]
    for method, res in m["metrics"].items():
        assert res["n_test_lines"] == n_test and res["lines"] == {"set": "every test line", "n": n_test, "of": n_test}
        for part in ("overall", "art", "office"):
            for name in ("HR@1", "HR@10", "NDCG@10", "MRR"):
                lo, hi = res[part]["ci95"][name]
                assert lo <= res[part][name] <= hi, (method, part, name)
                test = res[part]["vs_dual_graph"][name]
                assert test["delta"] == pytest.approx(res[part][name] - m["metrics"]["dual_graph"][part][name], abs=1e-5)
                assert 0 < test["p"] <= 1
    ranks = table["methods"]
    mrr = sum(1 / r for r in ranks["dual_graph"]) / n_test
    assert m["metrics"]["dual_graph"]["overall"]["MRR"] == pytest.approx(mrr, abs=1e-6)  # the table gives the metrics
    if m["metrics"]["urllm"]["overall"]["fusion_weight"] == 0.0:  # weight 0: the pipeline IS the dual-graph list
        assert ranks["urllm"] == ranks["dual_graph"]
        assert m["metrics"]["urllm"]["overall"]["vs_dual_graph"]["MRR"] == {"delta": 0.0, "p": 1.0, "ci95": [0.0, 0.0]}


def test_a_sample_of_lines_puts_every_method_on_that_sample(tmp_path):
    """llm.eval_lines=5: the LLM methods are scored on 5 seeded test lines, and then so is
    every method in the manifest (the full-split stage-1 ranks stay in line_ranks.json)."""
    out = tmp_path / "sampled"
    done = train(out, "--set", "llm.eval_lines=5", "--set", "llm.ks=1")
    assert done.returncode == 0, done.stderr[-3000:]
    m = json.loads((out / "manifest.json").read_text())
    table = json.loads((out / "line_ranks.json").read_text())
    scored = [i for i, r in enumerate(table["methods"]["urllm_free"]) if r is not None]
    assert len(scored) == 5 and scored == json.loads((out / "generations.json").read_text())["lines"]
    assert all(r is not None for r in table["methods"]["pop"])
    for method, res in m["metrics"].items():
        assert res["overall"]["n"] == 5 and res["lines"]["n"] == 5 and "5 test lines" in res["lines"]["set"], method
    hr = sum(table["methods"]["pop"][i] <= 10 for i in scored) / 5
    assert m["metrics"]["pop"]["overall"]["HR@10"] == pytest.approx(hr)


def test_rerun_reuses_every_stage_and_other_config_is_refused(tiny_run):
    out, _, _ = tiny_run
    again = train(out)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("unchanged, reused") == len(STAGES)  # every stage
    other = train(out, "--set", "fit.epochs=1")
    assert other.returncode == 2 and "another config" in other.stderr and "fit" in other.stderr


def test_a_rerun_with_every_stage_reused_loads_no_model(tiny_run, monkeypatch, capsys):
    """The same run again, in this process: every stage reused, and neither the LM nor a
    dual-graph model (nor its graphs) loaded, so it costs a small share of the first run."""
    import train
    import urllm.llm.base
    import urllm.pipeline.context
    import urllm.pipeline.stages  # noqa: F401  imports are paid once per process, not per run
    from urllm.models.dual_graph import DualGraphModel

    out, _, first_s = tiny_run
    loaded = []

    def spy(name, real):
        return lambda *args, **kwargs: loaded.append(name) or real(*args, **kwargs)

    monkeypatch.setattr(urllm.llm.base, "load_named", spy("lm", urllm.llm.base.load_named))
    monkeypatch.setattr(urllm.pipeline.context, "dataset_graphs", spy("graphs", urllm.pipeline.context.dataset_graphs))
    monkeypatch.setattr(DualGraphModel, "__init__", spy("dual_graph", DualGraphModel.__init__))
    start = time.perf_counter()
    assert train.main(["--profile", "tiny", "--out", str(out)]) == 0
    seconds = time.perf_counter() - start
    assert capsys.readouterr().out.count("unchanged, reused") == len(STAGES)
    assert loaded == []
    print(f"rerun {seconds:.1f} s, first run {first_s:.1f} s")
    assert seconds < 0.15 * first_s


def test_kill_mid_run_then_resume(tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "train.py", "--profile", "tiny", "--out", str(out)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # wait until the data stage and at least one model stage are done, then kill -9 mid-run
    deadline = time.time() + 240
    while time.time() < deadline:
        if (out / "manifest.json").exists() and len(json.loads((out / "manifest.json").read_text())["stages"]) >= 2:
            break
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    m = json.loads((out / "manifest.json").read_text())  # loadable, and plainly incomplete
    assert m["complete"] is False and len(m["stages"]) >= 2
    done_before = [s["name"] for s in m["stages"]]
    resumed = train(out)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    for name in done_before:
        assert f"[{name}] unchanged, reused" in resumed.stdout
    assert json.loads((out / "manifest.json").read_text())["complete"] is True


def test_bad_profile_override_and_dataset_are_refused(tmp_path):
    bad = subprocess.run([sys.executable, "train.py", "--profile", "huge", "--out", str(tmp_path / "x")], cwd=ROOT,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown profile 'huge'" in bad.stderr and "tiny" in bad.stderr
    assert "Traceback" not in bad.stderr
    bad = train(tmp_path / "y", "--dataset", "nosuch")
    assert bad.returncode == 2 and "unknown dataset source 'nosuch'" in bad.stderr
    with pytest.raises(ValueError, match="unknown config field 'fit.epochz'"):
        set_field(resolve("tiny", []), "fit.epochz", "3")
    with pytest.raises(ValueError, match="bad value for fit.epochs"):
        resolve("tiny", ["fit.epochs=three"])
    with pytest.raises(ValueError, match="dropout"):
        resolve("tiny", ["dual_graph.dropout=2"])
    for override, message in (("llm.eval_lines=-1", "llm.eval_lines=-1: expected >= 0"),
                              ("llm.valid_lines=-2", "llm.valid_lines=-2: expected >= 0"),
                              ("llm.generation.batch_lines=0", "batch_lines=0: must be >= 1"),
                              ("llm.generation.num_beams=0", "num_beams=0: must be >= 1"),
                              ("llm.generation.dtype=int8", "dtype='int8'")):
        with pytest.raises(ValueError, match=re.escape(message)):
            resolve("tiny", [override])
    bad = train(tmp_path / "z", "--set", "llm.eval_lines=-1")
    assert bad.returncode == 2 and "llm.eval_lines=-1" in bad.stderr and not (tmp_path / "z").exists()


def test_torchrun_two_cpu_ranks_train_identical_adapters(tmp_path):
    import re

    out = tmp_path / "ddp"
    torchrun = Path(sys.executable).parent / "torchrun"
    done = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "train.py", "--profile", "tiny",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    hashes = dict(re.findall(r"\[lora\] rank (\d) adapter sha256 (\w+)", done.stdout))
    assert set(hashes) == {"0", "1"}, done.stdout[-2000:]  # both ranks trained
    assert hashes["0"] == hashes["1"]  # and ended with the same adapter
    assert json.loads((out / "lora" / "training.json").read_text())["world_size"] == 2
    assert json.loads((out / "manifest.json").read_text())["complete"] is True
    # a second launch with another config is refused on rank 0, and the other rank stops too
    again = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "train.py", "--profile", "tiny",
                            "--out", str(out), "--set", "fit.epochs=2"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "another config" in again.stderr, again.stderr[-2000:]


def test_run_device_is_this_ranks_gpu_when_cuda_is_available(monkeypatch):
    import torch

    from urllm.pipeline.context import run_device

    cfg = resolve("tiny", [])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert run_device(cfg) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert run_device(cfg) == torch.device("cuda", 3)
    assert run_device(resolve("tiny", ["device=cpu"])) == torch.device("cpu")  # forced
