"""LoRA fine-tuning on a tiny random LM: answer-only labels, head only where labels are,
loss going down, adapter saved atomically and reloaded."""
import pytest
import torch

from tests.llm_fixtures import tiny_lm, tiny_tokenizer
from urllm.data import load_dataset
from urllm.llm.finetune import (
    LoraTrainConfig,
    add_lora,
    answer_loss,
    collate,
    encode_example,
    load_adapter,
    read_report,
    save_adapter,
    train_lora,
)
from urllm.llm.prompt import PromptBuilder, answer_text


@pytest.fixture(scope="module")
def setup():
    ds = load_dataset("synthetic?n_users=40")
    tok = tiny_tokenizer(ds.item_titles + ["You recommend products Similar user bought This user Answer"])
    builder = PromptBuilder(ds, tok)
    examples = [encode_example(tok, builder.build(ex.history, ex.domain).text, answer_text(ds, ex.target))
                for ex in ds.splits["train"][:8]]
    return ds, tok, examples


def test_labels_cover_only_the_answer(setup):
    _, tok, examples = setup
    ids, mask, labels = collate(examples[:2], tok.pad_token_id)
    for row, e in enumerate(examples[:2]):
        kept = labels[row][labels[row] != -100].tolist()
        assert kept == e.answer_ids and kept[-1] == tok.eos_token_id
        start = len(e.prompt_ids)
        assert ids[row, start : start + len(e.answer_ids)].tolist() == e.answer_ids  # label t = token t+1
        assert mask[row].sum() == len(e.prompt_ids) + len(e.answer_ids)


def test_head_runs_only_at_answer_positions(setup):
    _, tok, examples = setup
    model = tiny_lm(tok)
    seen = []
    model.get_output_embeddings().register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    ids, mask, labels = collate(examples[:3], tok.pad_token_id)
    loss, n = answer_loss(model, ids, mask, labels)
    assert seen == [n] and n == sum(len(e.answer_ids) for e in examples[:3]) < ids.numel()
    # equals the usual full-sequence loss restricted to the answer
    full = model(input_ids=ids, attention_mask=mask).logits
    ref = torch.nn.functional.cross_entropy(full[labels != -100], labels[labels != -100])
    assert torch.allclose(loss, ref, atol=1e-5)


def test_lora_training_lowers_loss_and_round_trips(setup, tmp_path):
    _, tok, examples = setup
    model = add_lora(tiny_lm(tok), LoraTrainConfig(r=4, alpha=8, target_modules=["q_proj", "v_proj"]))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert 0 < trainable < sum(p.numel() for p in model.parameters()) / 5
    cfg = LoraTrainConfig(r=4, alpha=8, steps=30, batch_size=4, lr=5e-2, warmup=2, progress=False,
                          target_modules=["q_proj", "v_proj"])
    report = train_lora(model, tok, examples[:4], cfg)
    losses = [p["loss"] for p in report["curve"]]
    assert len(losses) == 30 and sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    assert report["tokens_per_s"] > 0
    save_adapter(model, tmp_path / "adapter", report)
    assert read_report(tmp_path / "adapter")["curve"][0]["step"] == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    reloaded = load_adapter(tiny_lm(tok), tmp_path / "adapter")
    ids, mask, labels = collate(examples[:2], tok.pad_token_id)
    with torch.no_grad():
        assert torch.allclose(answer_loss(model, ids, mask, labels)[0], answer_loss(reloaded, ids, mask, labels)[0], atol=1e-5)


def test_bad_lora_config_and_missing_adapter(tmp_path, setup):
    _, tok, _ = setup
    with pytest.raises(ValueError, match="steps"):
        LoraTrainConfig(steps=0).validate()
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        load_adapter(tiny_lm(tok), tmp_path)


def test_rank_loss_without_negatives_is_the_answer_loss(setup):
    from urllm.llm.finetune import RankLoss

    _, tok, examples = setup
    model = tiny_lm(tok)
    ids, mask, labels = collate(examples[:1], tok.pad_token_id)
    want, _ = answer_loss(model, ids, mask, labels)
    got, n = RankLoss(model, rank_weight=1.0, temperature=1.0)(examples[:1])
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert n == len(examples[0].answer_ids)


def test_ranking_loss_puts_the_target_above_its_hard_negatives(setup):
    """Training with negatives lowers the loss and leaves each example's target the best-scored
    of its list; the gradient reaches only the adapter."""
    import dataclasses

    from urllm.llm.candidate_scores import score_many

    ds, tok, examples = setup
    ranked = [dataclasses.replace(e, negatives=[encode_example(tok, "", ds.item_titles[i]).answer_ids
                                                for i in range(j, j + 3)]) for j, e in enumerate(examples[:4])]
    cfg = LoraTrainConfig(r=4, alpha=8, steps=40, batch_size=2, lr=2e-2, warmup=2, progress=False, dtype="float32",
                          negatives=3, rank_weight=1.0)
    model = add_lora(tiny_lm(tok), cfg)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    report = train_lora(model, tok, ranked, cfg)
    losses = [c["loss"] for c in report["curve"]]
    assert sum(losses[-5:]) < sum(losses[:5])
    scores = score_many(model.eval(), [(e.prompt_ids, [e.answer_ids, *e.negatives]) for e in ranked])
    assert all(int(s.argmax()) == 0 for s in scores)
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if not p.requires_grad)
