"""The stage table (urllm/pipeline/stages.py): its order, what enters each stage's key, the
lazy context, and stage 1's device plumbing (checked on the CPU and the meta device)."""
import dataclasses

import pytest
import torch

from urllm.pipeline import stages
from urllm.pipeline.config import RunConfig, resolve
from urllm.pipeline.context import Context
from urllm.pipeline.writer import stage_key
from urllm.schema import STAGES


def keys(cfg: RunConfig) -> dict[str, str]:
    return {name: stage_key(inputs) for name, inputs in stages.stage_inputs(cfg).items()}


def test_the_table_runs_in_the_schemas_order_and_reads_only_earlier_stages():
    assert tuple(s.name for s in stages.STAGE_TABLE) == STAGES
    seen = set()
    for stage in stages.STAGE_TABLE:
        assert set(stage.reads) <= seen, stage.name
        seen.add(stage.name)
    assert [s.name for s in stages.STAGE_TABLE if s.ddp] == ["lora"]  # the one stage torchrun's followers join


def test_every_config_path_names_a_field_of_the_run_config():
    cfg = resolve("tiny", [])
    inputs = stages.stage_inputs(cfg)  # raises on a path that names no field
    assert inputs["retrieval"]["config"] == {"llm.retrieval": dataclasses.asdict(cfg.llm.retrieval)}
    assert inputs["data"]["config"] == {"dataset": "synthetic?n_users=120"} and inputs["data"]["reads"] == {}
    assert inputs["lora"]["reads"] == {"dual_graph": stage_key(inputs["dual_graph"]),  # its ranking loss's negatives
                                       "retrieval": stage_key(inputs["retrieval"])}
    with pytest.raises(AttributeError):
        stages._config_value(cfg, "llm.no_such_field")


def test_files_version_enters_every_stage_key(monkeypatch):
    before = keys(resolve("tiny", []))
    monkeypatch.setattr(stages, "FILES_VERSION", stages.FILES_VERSION + 1)
    after = keys(resolve("tiny", []))
    assert all(before[name] != after[name] for name in STAGES)


@pytest.mark.parametrize("override, rebuilt", [
    ("llm.retrieval.vector=mixed", {"retrieval", "lora", "generation", "rerank", "evaluation"}),
    ("fit.epochs=9", {"dual_graph", "dual_graph_no_graph", "dual_graph_readout_only", "llm4cdsr", "retrieval", "lora",
                      "generation", "rerank", "rsllm", "evaluation", "projections"}),
    ("llm.rerank.weights=0,1", {"rerank", "evaluation"}),  # the re-ranker's own settings touch only it
    ("llm.lora.negatives=3", {"lora", "generation", "rerank", "rsllm", "evaluation", "projections"}),  # rsllm: the LoRA shape
    ("sasrec.dropouts=0.1,0.4", {"sasrec", "evaluation"}),  # a baseline's grid touches only itself
    ("itemknn.history_len=5", {"itemknn", "evaluation"}),
    ("llm.generation.num_beams=3", {"generation", "rsllm", "evaluation", "projections"}),
    ("profiles.clusters=3", {"profiles", "llm4cdsr", "evaluation", "projections"}),  # llm4cdsr: its items are a space
    ("umap_neighbors=5", {"projections"}),
    ("dataset=synthetic?n_users=60", set(STAGES)),
])
def test_a_config_change_changes_the_keys_of_that_stage_and_of_the_stages_reading_it(override, rebuilt):
    before, after = keys(resolve("tiny", [])), keys(resolve("tiny", [override]))
    assert {name for name in STAGES if before[name] != after[name]} == rebuilt


def test_the_context_loads_nothing_before_it_is_read(tmp_path, monkeypatch):
    import urllm.llm.base
    import urllm.pipeline.context

    calls = []
    monkeypatch.setattr(urllm.llm.base, "load_named", lambda *a: calls.append("lm") or ("model", "tok"))
    monkeypatch.setattr(urllm.pipeline.context, "load_dataset", lambda spec: calls.append("data") or "ds")
    monkeypatch.setattr(urllm.pipeline.context, "dataset_graphs", lambda ds: calls.append("graphs") or "graphs")
    ctx = Context(resolve("tiny", ["device=cpu"]), tmp_path)
    assert calls == []
    assert ctx.graphs == "graphs" and ctx.graphs == "graphs"  # the data, then the graphs, once
    assert calls == ["data", "graphs"]
    monkeypatch.setattr(urllm.llm.base, "load_named",
                        lambda *a: calls.append("lm") or (torch.nn.Linear(1, 1), "tok"))
    assert ctx.lm is ctx.lm and calls.count("lm") == 1
    assert ctx.fresh_lm() is not None and "lm" not in vars(ctx)  # let go of the kept one
    assert calls.count("lm") == 2


@pytest.fixture(scope="module")
def synthetic():
    from urllm.data import load_dataset

    return load_dataset("synthetic?n_users=60")


def dual_graph_model(ds):
    from urllm.models.config import DualGraphConfig
    from urllm.models.dual_graph import DualGraphModel
    from urllm.pipeline.context import dataset_graphs

    return DualGraphModel(DualGraphConfig(dim=8, n_blocks=1, max_len=8), torch.from_numpy(ds.item_domain), dataset_graphs(ds))


def test_to_device_moves_the_dual_graph_adjacencies_that_module_to_leaves(synthetic):
    from urllm.models.trainer import to_device

    model = dual_graph_model(synthetic)
    assert model.adjacency  # the normalised graphs, kept in a plain dict
    model.to("meta")
    assert {a.device.type for a in model.adjacency.values()} == {"cpu"}  # Module.to leaves them behind
    to_device(model, "meta")
    assert {a.device.type for a in model.adjacency.values()} == {"meta"}
    assert {t.device.type for t in [*model.parameters(), *model.buffers()]} == {"meta"}


def test_fit_on_the_cpu_device_is_the_run_without_one(synthetic, one_torch_thread):
    """Stage 1 trains on the run's device; on the CPU, naming it changes no number."""
    from urllm.models.config import FitConfig
    from urllm.models.evaluation import evaluate
    from urllm.models.trainer import SequenceScorer, fit
    from urllm.seed import seed_everything

    results = []
    for device in (None, torch.device("cpu")):
        seed_everything(0)
        model = dual_graph_model(synthetic)
        fit(model, synthetic, FitConfig(epochs=2, batch_size=16, progress=False), device=device)
        scorer = SequenceScorer(model)
        results.append((evaluate(scorer, synthetic, "test"), scorer.scores([synthetic.splits["test"][0].history], 0)))
    assert results[0][0] == results[1][0]
    assert torch.equal(results[0][1], results[1][1]) and results[0][1].device.type == "cpu"
