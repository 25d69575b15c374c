"""RSLLM on a tiny random LM and a tiny random ID table: soft-token prompts, where the
projected vectors land, the three losses and their gradients, two-stage training, and
constrained generation from a prompt given as embeddings."""
import dataclasses

import numpy as np
import pytest
import torch
from llm_fixtures import tiny_lm, tiny_tokenizer

from urllm.data import load_dataset
from urllm.llm.beam import beam_search, prefill
from urllm.llm.finetune import LoraTrainConfig, add_lora, encode_example
from urllm.llm.prompt import PromptBuilder, PromptConfig, answer_text
from urllm.llm.trie import TitleTrie
from urllm.methods.rsllm import (
    Projector,
    RSLLMConfig,
    build_soft_prompt,
    choose_placeholder,
    embed_soft_prompt,
    encode_unified,
    generate_from_soft_prompt,
    info_nce,
    prefill_embeds,
    rsllm_losses,
    title_token_ids,
    train_rsllm,
)

ID_DIM = 8
LORA = dict(r=4, alpha=8, target_modules=["q_proj", "v_proj"])


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def setup():
    ds = load_dataset("synthetic?n_users=40")
    tok = tiny_tokenizer(ds.item_titles + ["You recommend products Similar user bought This user Answer"])
    id_table = torch.randn(ds.n_items + 1, ID_DIM, generator=torch.Generator().manual_seed(0))
    return ds, tok, PromptBuilder(ds, tok), id_table


def projectors(tok, seed=0):
    torch.manual_seed(seed)
    llm_dim = tiny_lm(tok).get_input_embeddings().embedding_dim
    return Projector(ID_DIM, llm_dim), Projector(ID_DIM, llm_dim)


def unified_examples(setup, n=8):
    ds, tok, builder, id_table = setup
    out = []
    for ex in ds.splits["train"][:n]:
        prompt = build_soft_prompt(builder, ex.history, ex.domain)
        user_vector = id_table[ex.target] + 0.1 * id_table[ex.history].mean(0)  # a user near their target
        out.append(encode_unified(tok, prompt, answer_text(ds, ex.target), ex.target, user_vector))
    return out


# ---------------------------------------------------------------- soft-token prompts


def test_soft_prompt_lists_each_item_with_one_placeholder(setup):
    ds, tok, builder, _ = setup
    ex, other = ds.splits["train"][0], ds.splits["train"][1]
    neighbors = [other.history[-3:]]
    soft = build_soft_prompt(builder, ex.history, ex.domain, neighbors)
    placeholder = choose_placeholder(tok)
    placeholder_id = tok.convert_tokens_to_ids(placeholder)
    assert soft.soft_items == [int(i) for i in neighbors[0]] + [int(i) for i in ex.history]
    assert [soft.input_ids[p] for p in soft.soft_positions] == [placeholder_id] * len(soft.soft_items)
    assert soft.input_ids.count(placeholder_id) == len(soft.soft_positions)
    # the same wording as the text prompt, one placeholder after each title
    assert soft.prompt.text.replace(placeholder, "") == builder.build(ex.history, ex.domain, neighbors).text
    for p, item in zip(soft.soft_positions, soft.soft_items):
        title = tok(ds.item_titles[item], add_special_tokens=False)["input_ids"]
        assert soft.input_ids[p - len(title) : p] == title
    assert soft.prompt.n_tokens == len(soft.input_ids)


def test_soft_prompt_keeps_the_token_budget(setup):
    ds, tok, _, _ = setup
    ex = max(ds.splits["train"], key=lambda e: len(e.history))
    full = build_soft_prompt(PromptBuilder(ds, tok), ex.history, ex.domain)
    budget = full.prompt.n_tokens - 10
    soft = build_soft_prompt(PromptBuilder(ds, tok, PromptConfig(max_tokens=budget)), ex.history, ex.domain)
    assert len(soft.input_ids) == soft.prompt.n_tokens <= budget
    assert soft.soft_items == [int(i) for i in ex.history[len(ex.history) - len(soft.soft_items) :]]  # oldest dropped
    assert soft.prompt.dropped["history"] == len(ex.history) - len(soft.soft_items) > 0


def test_placeholder_must_be_one_token(setup):
    ds, _, builder, _ = setup
    ex = ds.splits["train"][0]
    with pytest.raises(ValueError, match="single token"):
        build_soft_prompt(builder, ex.history, ex.domain, placeholder="You recommend")


def test_projected_vectors_land_exactly_at_soft_positions(setup):
    ds, tok, builder, id_table = setup
    model = tiny_lm(tok)
    projector, _ = projectors(tok)
    ex = ds.splits["train"][0]
    soft = build_soft_prompt(builder, ex.history, ex.domain)
    with torch.no_grad():
        embeds = embed_soft_prompt(model, projector, id_table, soft)
        plain = model.get_input_embeddings()(torch.tensor([soft.input_ids]))
        projected = projector(id_table[soft.soft_items])
    assert embeds.shape == (1, len(soft.input_ids), model.config.hidden_size)
    at_soft = torch.zeros(len(soft.input_ids), dtype=torch.bool)
    at_soft[soft.soft_positions] = True
    assert torch.equal(embeds[0, at_soft], projected)
    assert torch.equal(embeds[0, ~at_soft], plain[0, ~at_soft])  # text tokens unchanged


# ---------------------------------------------------------------- losses


def test_gradients_of_each_loss_reach_their_parameters(setup):
    ds, tok, _, id_table = setup
    model = add_lora(tiny_lm(tok), LoraTrainConfig(**LORA))
    projector, user_projector = projectors(tok)
    title_ids = title_token_ids(tok, ds.item_titles)
    batch = unified_examples(setup, 4)
    losses = rsllm_losses(model, projector, id_table, title_ids, batch, tok.pad_token_id, RSLLMConfig(), user_projector)
    assert set(losses) == {"lm", "item_text", "user_item", "total"}
    lora = [p for n, p in model.named_parameters() if "lora_" in n]

    def reached(params, loss) -> bool:
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        return any(g is not None and g.abs().sum() > 0 for g in grads)

    projector_params, user_params = list(projector.parameters()), list(user_projector.parameters())
    assert reached(projector_params, losses["lm"]) and reached(lora, losses["lm"])
    assert reached(projector_params, losses["item_text"])
    assert not reached(lora, losses["item_text"])  # the title side is a fixed target
    assert reached(projector_params, losses["user_item"]) and reached(user_params, losses["user_item"])
    assert reached(lora + projector_params + user_params, losses["total"])


def test_info_nce_does_not_treat_a_repeated_item_as_a_negative():
    anchors = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    loss = info_nce(anchors, anchors.clone(), [7, 7, 3], temperature=0.1)
    assert loss < 1e-3  # without the mask, rows 0 and 1 would each be torn between two equal columns


@pytest.mark.parametrize("term", ["item_text", "user_item"])
def test_each_contrastive_loss_decreases(setup, term):
    ds, tok, _, id_table = setup
    model = tiny_lm(tok)
    projector, user_projector = projectors(tok)
    cfg = RSLLMConfig(lm_weight=0.0, item_text_weight=float(term == "item_text"), user_item_weight=float(term == "user_item"))
    title_ids = title_token_ids(tok, ds.item_titles)
    batch = unified_examples(setup, 8)
    optimizer = torch.optim.Adam([*projector.parameters(), *user_projector.parameters()], lr=1e-2)
    curve = []
    for _ in range(15):
        loss = rsllm_losses(model, projector, id_table, title_ids, batch, tok.pad_token_id, cfg, user_projector)[term]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        curve.append(float(loss.detach()))
    assert curve[-1] < 0.5 * curve[0]


def test_config_validation():
    with pytest.raises(ValueError, match="temperature"):
        RSLLMConfig(temperature=0).validate()
    with pytest.raises(ValueError, match="all loss weights"):
        RSLLMConfig(lm_weight=0, item_text_weight=0, user_item_weight=0).validate()


# ---------------------------------------------------------------- two-stage training


def test_two_stage_training_returns_both_curves_deterministically(setup):
    ds, tok, builder, id_table = setup
    text_examples = [encode_example(tok, builder.build(ex.history, ex.domain).text, answer_text(ds, ex.target))
                     for ex in ds.splits["train"][:8]]
    unified = unified_examples(setup, 8)
    cfg = RSLLMConfig(text_steps=3, unified_steps=4, batch_size=2, warmup=1, progress=False)

    def run():
        model = add_lora(tiny_lm(tok), LoraTrainConfig(**LORA))
        projector, user_projector = projectors(tok)
        before = [p.detach().clone() for p in projector.parameters()]
        report = train_rsllm(model, tok, projector, text_examples, unified, cfg, id_table=id_table,
                             title_ids=title_token_ids(tok, ds.item_titles), user_projector=user_projector)
        assert any(not torch.equal(a, b) for a, b in zip(before, projector.parameters()))  # stage 2 trains it
        return report

    report = run()
    text_curve, unified_curve = report["text_stage"]["curve"], report["unified_stage"]["curve"]
    assert len(text_curve) == 3 and len(unified_curve) == 4
    assert {"loss", "lm", "item_text", "user_item", "lr"} <= set(unified_curve[0])
    assert all(np.isfinite(p["loss"]) for p in text_curve + unified_curve)
    again = run()
    assert [p["loss"] for p in again["unified_stage"]["curve"]] == [p["loss"] for p in unified_curve]
    assert [p["loss"] for p in again["text_stage"]["curve"]] == [p["loss"] for p in text_curve]


# ---------------------------------------------------------------- generation


def test_constrained_generation_from_a_soft_prompt_stays_in_the_trie(setup):
    ds, tok, builder, id_table = setup
    model = add_lora(tiny_lm(tok), LoraTrainConfig(**LORA)).eval()
    projector, _ = projectors(tok)
    ex = ds.splits["test"][0]
    soft = build_soft_prompt(builder, ex.history, ex.domain)
    items = ds.items_of(ex.domain).tolist()
    trie = TitleTrie.from_items(tok, [ds.item_titles[i] for i in items], items)
    hyps = generate_from_soft_prompt(model, projector, id_table, soft, tok.eos_token_id, trie, num_beams=4,
                                     max_new_tokens=40)
    assert len(hyps) == 4
    for h in hyps:
        assert h.items and set(h.items) <= set(items)
        assert tok.decode(h.tokens) in {ds.item_titles[i] for i in h.items}


@pytest.mark.parametrize("with_lora", [False, True])
def test_prefill_embeds_without_soft_tokens_equals_prefill(setup, with_lora):
    ds, tok, builder, _ = setup
    model = tiny_lm(tok)
    model = add_lora(model, LoraTrainConfig(**LORA)).eval() if with_lora else model
    ex = ds.splits["test"][0]
    ids = tok(builder.build(ex.history, ex.domain).text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        embeds = model.get_input_embeddings()(torch.tensor([ids]))
    by_ids, by_embeds = prefill(model, ids), prefill_embeds(model, embeds)
    assert type(by_ids[0]) is type(by_embeds[0])
    assert torch.allclose(by_ids[1], by_embeds[1], atol=1e-6)
    items = ds.items_of(ex.domain).tolist()
    trie = TitleTrie.from_items(tok, [ds.item_titles[i] for i in items], items)
    for search_trie in (trie, None):
        a = beam_search(model, ids, tok.eos_token_id, 4, 12, search_trie, prefilled=by_ids)
        b = beam_search(model, ids, tok.eos_token_id, 4, 12, search_trie, prefilled=by_embeds)
        assert [h.tokens for h in a] == [h.tokens for h in b]
        assert np.allclose([h.score for h in a], [h.score for h in b], atol=1e-5)


# ---- RSLLM as a run's method (urllm/methods/rsllm_run.py) ------------------------------------------
def run_vectors(ds, id_table):
    """stage1_vectors as the run stores them: the item table and per training line a user
    vector per target domain."""
    n = len(ds.splits["train"])
    users = torch.randn(n, 2, ID_DIM, generator=torch.Generator().manual_seed(1))
    return {"items": id_table[: ds.n_items].clone(), "users_train": users}


def test_run_examples_pair_each_training_line_with_its_user_vector(setup):
    from urllm.methods.rsllm_run import RSLLMRunConfig, training_examples

    ds, tok, builder, id_table = setup
    vectors = run_vectors(ds, id_table)
    cfg = RSLLMRunConfig(train_lines=6)
    text_only, unified = training_examples(ds, builder, vectors, cfg, choose_placeholder(tok))
    assert len(text_only) == len(unified) == 6
    lines = sorted(np.random.default_rng(0).choice(len(ds.splits["train"]), 6, replace=False).tolist())
    for line, t, u in zip(lines, text_only, unified):
        ex = ds.splits["train"][line]
        assert u.target == ex.target and torch.equal(u.user_vector, vectors["users_train"][line, ex.domain])
        assert u.prompt.soft_items[-len(ex.history):] == ex.history.tolist()  # the user's own items, no neighbours
        assert t.answer_ids == u.answer_ids  # the same answer in both stages


def test_run_trains_scores_in_domain_and_saves_what_load_restores(setup, tmp_path):
    from urllm.llm.generate import GenerationConfig
    from urllm.methods.rsllm_run import RSLLMResult, RSLLMRunConfig, evaluate, load, save, train_and_evaluate

    ds, tok, _, id_table = setup
    vectors = run_vectors(ds, id_table)
    test = ds.splits["test"]
    top = torch.tensor([ds.items_of(ex.domain)[:12].tolist() for ex in test])
    cfg = RSLLMRunConfig(method=RSLLMConfig(text_steps=1, unified_steps=2, batch_size=2, warmup=1, progress=False),
                         lora=LoraTrainConfig(**LORA, progress=False), train_lines=6,
                         generation=GenerationConfig(num_beams=3, max_new_tokens=12, top_k=8, dtype="float32"))
    lines = [0, 2, 5]
    result = train_and_evaluate(ds, tiny_lm(tok), tok, vectors, top, lines, cfg)
    assert sorted(result.records, key=int) == [str(n) for n in lines]
    for line in lines:
        rec, ex = result.records[str(line)], test[line]
        assert len(rec["ranking"]) == 8 and len(set(rec["ranking"])) == 8
        assert all(o["valid"] and o["in_domain"] for o in rec["outputs"])  # the trie keeps every answer in the domain
        generated = [o["item"] for o in rec["outputs"] if not o["duplicate"]]
        assert rec["ranking"][: len(generated)] == generated  # then completed from the dual-graph list
        assert rec["soft_tokens"] == len(ex.history)
    overall = result.metrics["overall"]
    assert overall["ood_rate"] == 0.0 and overall["valid_rate"] == 1.0 and result.metrics["n_test_lines"] == 3
    assert len(result.report["unified_stage"]["curve"]) == 2 and result.report["id_dim"] == ID_DIM

    files = save(result, tmp_path / "rsllm")
    assert {"adapter_config.json", "projectors.safetensors", "training.json"} <= {p.name for p in files}
    model, projector, report = load(tiny_lm(tok), tmp_path / "rsllm")
    for (name, a), b in zip(result.projector.state_dict().items(), projector.state_dict().values()):
        assert torch.equal(a.float(), b), name
    lora = {n: p for n, p in model.named_parameters() if "lora_" in n}
    trained = {n: p for n, p in result.model.named_parameters() if "lora_" in n}
    assert lora and all(torch.equal(lora[n].float(), trained[n].float()) for n in lora)  # intact after merge_adapter
    # the loaded adapter as a side branch answers as the folded one did (float32)
    side_branch = dataclasses.replace(cfg, generation=dataclasses.replace(cfg.generation, merge_adapter=False))
    _, records = evaluate(ds, RSLLMResult(model, projector, None, report, {}, {}), tok, vectors, top, lines, side_branch,
                          report["placeholder"])
    assert [records[str(n)]["ranking"] for n in lines] == [result.records[str(n)]["ranking"] for n in lines]
    with pytest.raises(FileNotFoundError, match="projectors.safetensors"):
        load(tiny_lm(tok), tmp_path)
