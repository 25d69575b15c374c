"""benchmarks/rerank_art_office.py on the tiny profile: variants measured by separate
invocations land in one table, and --reread adds methods from the saved scores without
scoring and without moving a measured row; the test-line weight bound is never below a row."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from urllm.stats import line_values

ROOT = Path(__file__).resolve().parents[1]


def bench(out: Path, *args: str) -> dict:
    done = subprocess.run([sys.executable, "benchmarks/rerank_art_office.py", "--out", str(out), "--dataset", "synthetic",
                           "--profile", "tiny", "--valid-lines", "0", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "rerank_ablations.json").read_text())


def test_invocations_merge_and_a_reread_adds_rows_without_moving_measured_ones(tmp_path):
    first = bench(tmp_path, "--variants", "tuned_k1", "--shorter")
    assert set(first["passes"]) == {"tuned_k1"}
    assert set(first["ranks"]) == {"dual_graph", "tuned_k1_calibrated", "tuned_k1_raw", "tuned_k1_llm_only"}

    second = bench(tmp_path, "--variants", "tuned_k0")  # a later day: the earlier variant is kept, with its command
    assert set(second["passes"]) == {"tuned_k1", "tuned_k0"}
    assert "--variants tuned_k1" in second["commands"]["tuned_k1"] and "--variants tuned_k0" in second["commands"]["tuned_k0"]
    for method in ("dual_graph", "tuned_k1_calibrated", "tuned_k1_raw", "tuned_k1_llm_only"):
        assert second["ranks"][method] == first["ranks"][method]
    assert "tuned_k0_calibrated_top10" in second["ranks"] and "tuned_k1_calibrated_top10" not in second["ranks"]
    assert set(second["metrics"]) == set(second["ranks"])
    n = len(second["ranks"]["dual_graph"])
    assert all(len(r) == n for r in second["ranks"].values())  # every method on every test line

    third = bench(tmp_path, "--reread", "--shorter", "5")
    assert {m for m in third["ranks"] if m not in second["ranks"]} == {"tuned_k1_calibrated_top5", "tuned_k0_calibrated_top5"}
    for method, ranks in second["ranks"].items():
        assert third["ranks"][method] == ranks
    assert set(third["metrics"]) == set(third["ranks"])
    top5 = third["ranks"]["tuned_k0_calibrated_top5"]
    dual = third["ranks"]["dual_graph"]
    # re-ordering the dual-graph top-5 leaves every target outside it where it was
    assert all(t == d for t, d in zip(top5, dual) if d is None or d > 5)
    moves, hr1 = third["top1_moves"], lambda r: sum(x == 1 for x in r)
    ceiling = moves["ceiling"]
    assert ceiling["first"] == hr1(dual) and ceiling["in_top_n"] == sum(d is not None and d <= ceiling["n"] for d in dual)
    for method, ranks in third["ranks"].items():  # HR@1's change is exactly the lines moved in minus those moved out
        if method != "dual_graph":
            assert moves[method]["up"] - moves[method]["down"] == hr1(ranks) - hr1(dual)
            assert moves[method]["up"] <= ceiling["in_top_n"] - ceiling["first"]  # only the top-n moves
    grid = {0.0, *map(float, third["config"]["weights"])}
    assert third["passes"]["tuned_k0"]["chosen"]["calibrated_top5"]["weight"] in grid
    # the weight read on the test lines bounds every weight chosen on valid: never below the
    # chosen row (one line of slack where the row came from unrounded scores), never below 0 (w = 0)
    bound = third["weight_bound"]
    assert set(bound) == {f"{p}_{r}" for p in ("tuned_k1", "tuned_k0") for r in ("calibrated", "raw", "calibrated_top5")}
    for method, best in bound.items():
        values = line_values(np.array([np.inf if r is None else r for r in third["ranks"][method]]))
        reference = line_values(np.array([np.inf if r is None else r for r in dual]))
        slack = 0 if method.endswith("top5") else 1 / n
        for metric in ("HR@1", "MRR"):
            assert best[metric]["weight"] in grid and best[metric]["delta"] >= 0 and 0 < best[metric]["p"] <= 1
            assert best[metric]["delta"] >= (values[metric] - reference[metric]).mean() - slack - 1e-6, (method, metric)


def test_a_ranking_lora_is_trained_once_and_reused_by_a_later_invocation(tmp_path):
    first = bench(tmp_path, "--variants", "ranked_k1")
    adapter = tmp_path / "lora_ranked" / "adapter_model.safetensors"
    written = adapter.stat().st_mtime_ns
    trained = first["trained"]["ranked"]
    assert trained["examples"] > 0 and "llm.lora.negatives=5" in trained["overrides"]

    again = bench(tmp_path, "--variants", "ranked_k1")  # loads the saved adapter: same file, same scores
    assert adapter.stat().st_mtime_ns == written
    assert again["trained"]["ranked"] == trained
    assert again["ranks"]["ranked_k1_calibrated"] == first["ranks"]["ranked_k1_calibrated"]
    assert again["scored"]["ranked_k1"]["test"]["llm"] == first["scored"]["ranked_k1"]["test"]["llm"]

    other = bench(tmp_path, "--variants", "tuned_k1")  # a variant of another LM keeps the earlier one's training summary
    assert set(other["passes"]) == {"ranked_k1", "tuned_k1"} and other["trained"]["ranked"] == trained


def test_the_closest_variant_is_a_train_py_run_with_the_same_ranks(tmp_path):
    """The README's closest variant (the 200-prompt ranking LoRA, calibrated fusion) is
    train.py's urllm_rerank with RANKING_LORAS["ranked"] as overrides: same weight, same ranks."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from rerank_art_office import RANKING_LORAS

    data = "synthetic?n_users=120"  # the tiny profile's own dataset, as train.py reads it
    done = subprocess.run([sys.executable, "benchmarks/rerank_art_office.py", "--out", str(tmp_path / "bench"), "--dataset",
                           data, "--profile", "tiny", "--valid-lines", "0", "--variants", "ranked_k1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    overrides = [arg for o in [*RANKING_LORAS["ranked"], "llm.rerank.valid_lines=0"] for arg in ("--set", o)]
    done = subprocess.run([sys.executable, "train.py", "--profile", "tiny", "--out", str(tmp_path / "run"), *overrides],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    bench = json.loads((tmp_path / "bench" / "rerank_ablations.json").read_text())
    run = json.loads((tmp_path / "run" / "rerank.json").read_text())
    weight = bench["passes"]["ranked_k1"]["chosen"]["calibrated"]["weight"]
    assert weight > 0 and run["weight"] == weight  # the LLM is in the fused list, not the dual-graph order alone
    ranks = bench["ranks"]["ranked_k1_calibrated"]
    assert run["lines"] == list(range(len(ranks))) and run["ranks"] == ranks
    assert ranks != bench["ranks"]["dual_graph"]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["config"]["llm"]["lora"]["negatives"] == 5 and "urllm_rerank" in manifest["metrics"]


def test_an_earlier_file_without_a_later_config_field_keeps_its_variants(tmp_path):
    """A re-ranker field added after an earlier invocation (at its default) is the same config;
    another value of a field is not, and the earlier variants are then dropped."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from rerank_art_office import with_earlier

    from urllm.llm.config import RerankConfig
    from urllm.pipeline.config import to_dict

    config = to_dict(RerankConfig())
    older = {k: v for k, v in config.items() if k != "list_candidates"}
    earlier = {"config": older, "valid_lines": 4, "command": "old", "ranks": {"dual_graph": [1, 2], "a_calibrated": [1, 1]},
               "passes": {"a": {"lm": "tuned"}}, "scored": {"a": {}}}
    path = tmp_path / "rerank_ablations.json"
    path.write_text(json.dumps(earlier))
    report = {"command": "new", "config": config, "valid_lines": 4, "ranks": {"dual_graph": [1, 2]}, "passes": {}}
    merged = with_earlier(json.loads(json.dumps(report)), path)
    assert set(merged["passes"]) == {"a"} and merged["ranks"]["a_calibrated"] == [1, 1] and merged["commands"]["a"] == "old"
    other = with_earlier(json.loads(json.dumps(report | {"config": config | {"candidates": 10}})), path)
    assert other["passes"] == {}
