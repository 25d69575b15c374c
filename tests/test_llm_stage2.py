"""Stage 2 end to end on synthetic data: stage-1 vectors -> neighbours -> prompts -> LoRA
-> every generation variant -> metrics, with a tiny random LM."""
import pytest
import torch

from tests.llm_fixtures import tiny_lm, tiny_tokenizer
from urllm.data import load_dataset
from urllm.llm.finetune import LoraTrainConfig, add_lora, train_lora
from urllm.llm.generate import GenerationConfig, Generator
from urllm.llm.prompt import PromptBuilder, PromptConfig
from urllm.methods.retrieval import RetrievalConfig
from urllm.methods.urllm_stage2 import Neighbours, Stage2Config, evaluate_lines, sample_lines, score_results, training_examples
from urllm.models.dual_graph import DualGraphConfig, DualGraphModel
from urllm.models.export import export_stage1
from urllm.models.graphs import build_graphs
from urllm.models.sequences import graph_sequences
from urllm.models.trainer import FitConfig, fit


@pytest.fixture(scope="module")
def trained():
    ds = load_dataset("synthetic?n_users=80")
    torch.manual_seed(0)
    graphs = build_graphs(graph_sequences(ds.splits["train"]), ds.item_domain, ds.item_attributes)
    model = DualGraphModel(DualGraphConfig(dim=16, n_blocks=1, max_len=12), torch.from_numpy(ds.item_domain), graphs)
    fit(model, ds, FitConfig(epochs=2, batch_size=16, progress=False))
    return ds, model


@pytest.fixture(scope="module")
def stage1(trained, tmp_path_factory):
    ds, model = trained
    out = tmp_path_factory.mktemp("run")
    export_stage1(model, ds, out, top_n=30)
    from safetensors.torch import load_file

    return ds, load_file(out / "stage1_vectors.safetensors"), load_file(out / "stage1_rankings.safetensors")["test_top"]


def test_completed_ranks_are_full_ranks_comparable_with_stage1(trained, stage1):
    """A list completed by the dual-graph ranking ranks the target as the full ranking
    does: the dual-graph top-20 gives stage 1's own full rank on every line; a list naming
    the target puts it at its position; a list of other items pushes it down by those."""
    from urllm.models.evaluation import CompletedRanks, rank_examples
    from urllm.models.trainer import SequenceScorer

    ds, model = trained
    test_top = stage1[2]
    scorer = SequenceScorer(model)
    full, _, _ = rank_examples(scorer, ds, ds.splits["test"])
    ranker = CompletedRanks(scorer, ds, "test")
    ranker.prepare(range(len(full)))
    assert [ranker.rank(i, test_top[i][:20].tolist()) for i in range(len(full))] == full.tolist()
    assert any(r > 20 for r in full)  # lines whose target lies past the list are ranked, not dropped
    for line, ex in enumerate(ds.splits["test"][:10]):
        assert ranker.rank(line, [*test_top[line][:3].tolist(), ex.target]) == (4 if ex.target not in test_top[line][:3] else
                                                                              test_top[line][:3].tolist().index(ex.target) + 1)
        items = ds.items_of(ex.domain).tolist()
        others = [i for i in items if i != ex.target][-5:]  # 5 items, some scored above the target, some below
        row = scorer.scores([ex.history], ex.domain)[0]
        above = sum(bool(row[items.index(i)] >= row[items.index(ex.target)]) for i in others)
        assert ranker.rank(line, others) == 5 + full[line] - above


@pytest.mark.parametrize("vector", ["domain", "mixed"])
def test_neighbours_never_include_the_user(stage1, vector):
    ds, vectors, _ = stage1
    nb = Neighbours(ds, vectors, RetrievalConfig(vector=vector))
    for line in range(0, len(ds.splits["train"]), 7):
        found = nb.query("train", line, 3)
        assert len(found) == 3 and ds.splits["train"][line].user not in [u for u, _ in found]
        assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
    assert nb.query("test", 0, 0) == []


def test_stage2_end_to_end_with_tiny_lm(stage1):
    ds, vectors, test_top = stage1
    tok = tiny_tokenizer(ds.item_titles + ["You recommend products Similar user bought This user Answer"])
    cfg = Stage2Config(k=1, train_lines=6, eval_lines=3, prompt=PromptConfig(max_tokens=2000),
                       lora=LoraTrainConfig(r=2, alpha=4, steps=3, batch_size=2, progress=False, target_modules=["q_proj"]),
                       generation=GenerationConfig(num_beams=2, max_new_tokens=10, top_k=20, candidates=10))
    nb = Neighbours(ds, vectors, cfg.retrieval)
    builder = PromptBuilder(ds, tok, cfg.prompt)
    examples = training_examples(ds, builder, nb, cfg)
    assert len(examples) == 6 and all(e.answer_ids[-1] == tok.eos_token_id for e in examples)
    model = add_lora(tiny_lm(tok), cfg.lora)
    report = train_lora(model, tok, examples, cfg.lora)
    assert len(report["curve"]) == 3
    lines = sample_lines(len(ds.splits["test"]), cfg.eval_lines, cfg.seed)
    assert lines == sample_lines(len(ds.splits["test"]), cfg.eval_lines, cfg.seed)  # same lines every time
    metrics, results = evaluate_lines(ds, Generator(model, tok, ds, cfg.generation), builder, nb, test_top, lines, cfg.k)
    assert set(metrics) == {"dual_graph", "urllm_free", "urllm_constrained", "urllm_candidates", "urllm_refined"}
    with_pipeline = score_results(ds, results, test_top, cfg.generation.top_k, fusion_weight=0.0)
    assert with_pipeline["urllm"]["overall"]["HR@10"] == metrics["dual_graph"]["overall"]["HR@10"]  # weight 0 = dual graph
    for name, m in metrics.items():
        assert m["n_test_lines"] == 3
        assert all(0 <= v <= 1 for v in m["overall"].values() if isinstance(v, float))
        assert set(m["overall"]["ci95"]) == set(m["overall"]["vs_dual_graph"]) >= {"HR@10", "MRR"}
    assert metrics["urllm_constrained"]["overall"]["ood_rate"] == 0.0
    assert metrics["urllm_constrained"]["overall"]["valid_rate"] == 1.0
    assert all(len(r.neighbours) == 1 and r.prompt_tokens["neighbors"] > 0 for r in results)


def test_training_examples_carry_hard_negatives_from_the_dual_graph_top_n(trained, stage1):
    import dataclasses

    from urllm.models.evaluation import rank_examples
    from urllm.models.trainer import SequenceScorer

    ds, model = trained
    _, vectors, _ = stage1
    tok = tiny_tokenizer(ds.item_titles + ["You recommend products Similar user bought This user Answer"])
    cfg = Stage2Config(train_lines=6, prompt=PromptConfig(max_tokens=2000), lora=LoraTrainConfig(negatives=3))
    nb, builder = Neighbours(ds, vectors, cfg.retrieval), PromptBuilder(ds, tok, cfg.prompt)
    train = ds.splits["train"]
    seen = []

    def top_of(lines):
        seen.append(list(lines))
        return rank_examples(SequenceScorer(model), ds, [train[i] for i in lines], top_n=10)[2]

    examples = training_examples(ds, builder, nb, cfg, top_of, top_n=10)
    lines = sample_lines(len(train), 6, cfg.seed)
    assert seen == [lines]
    tops = top_of(lines)
    for row, (line, e) in enumerate(zip(lines, examples)):
        titles = [tok.decode(n[:-1]) for n in e.negatives]
        pool = [ds.item_titles[i] for i in tops[row] if i != train[line].target]
        assert len(titles) == 3 and set(titles) <= set(pool) and ds.item_titles[train[line].target] not in titles
    assert training_examples(ds, builder, nb, cfg, top_of, top_n=10)[0].negatives == examples[0].negatives  # seeded
    plain = dataclasses.replace(cfg, lora=LoraTrainConfig())
    assert all(e.negatives == [] for e in training_examples(ds, builder, nb, plain, top_of, top_n=10))


# ---- the full pipeline: fusion with the dual-graph ranking, weight chosen on valid --------
def test_fuse_weight_zero_is_the_dual_graph_ranking_and_a_large_weight_puts_llm_items_first():
    from urllm.llm.refine import fuse

    dual = [10, 11, 12, 13, 14, 15]
    assert fuse(dual, [14, 99], 0.0, 4) == [10, 11, 12, 13]
    assert fuse(dual, [14, 99], 100.0, 4) == [14, 99, 10, 11]  # 99: only the LLM named it
    mid = fuse(dual, [13], 1.0, 6)
    assert mid[0] == 13 and sorted(mid) == sorted(dual)  # promoted, nothing lost
    assert fuse(dual, [], 2.0, 3) == [10, 11, 12]


def _result(line: int, llm_items: list[int], fell_back: bool = False):
    from urllm.llm.generate import Generation
    from urllm.methods.urllm_stage2 import LineResult

    refined = Generation("refined", [], [], fell_back, {"llm_items": llm_items})
    return LineResult(line, [], {}, {}, {"refined": refined})


def test_fusion_weight_is_chosen_on_valid_and_never_below_the_dual_graph_there(stage1):
    from urllm.methods.urllm_stage2 import choose_fusion_weight, pipeline_ranking

    ds = stage1[0]
    valid = ds.splits["valid"]
    top = torch.tensor([[t for t in ds.items_of(ex.domain) if t != ex.target][:30] for ex in valid])  # target never in it
    helpful = [_result(i, [ex.target]) for i, ex in enumerate(valid)]  # the LLM names every target
    weight, grid = choose_fusion_weight(ds, helpful, top, 20)
    assert weight > 0 and grid[str(weight)] == 1.0 and grid["0.0"] == 0.0
    assert pipeline_ranking(helpful[0], top, weight, 20)[0] == valid[0].target
    useless = [_result(i, [int(top[i][-1])]) for i in range(len(valid))]  # names a poor item
    top_hit = torch.tensor([[ex.target, *[t for t in ds.items_of(ex.domain) if t != ex.target][:29]] for ex in valid])
    weight, grid = choose_fusion_weight(ds, useless, top_hit, 20)
    assert weight == 0.0  # ties go to the smaller weight: the dual-graph ranking itself
    assert pipeline_ranking(useless[0], top_hit, weight, 20) == [int(i) for i in top_hit[0][:20]]
    fell = _result(0, [valid[0].target], fell_back=True)  # Algorithm 1 fell back: the dual-graph list
    assert pipeline_ranking(fell, top, 4.0, 20) == [int(i) for i in top[0][:20]]
