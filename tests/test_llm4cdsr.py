"""LLM4CDSR: item texts and embedders, the embedding cache, PCA tables, the causal
tri-thread model, its losses, and a tiny end-to-end training run."""
import socket
import time

import numpy as np
import pytest
import torch
from llm_fixtures import tiny_lm, tiny_tokenizer

from urllm.data import load_dataset
from urllm.models.evaluation import evaluate
from urllm.models.item_text import (
    cached_item_embeddings,
    item_text_embeddings,
    item_texts,
    lm_item_embeddings,
    minilm_item_embeddings,
    pca_reduce,
)
from urllm.models.llm4cdsr import LLM4CDSRConfig, LLM4CDSRModel, train_llm4cdsr
from urllm.models.popularity import Popularity
from urllm.models.trainer import FitConfig, SequenceScorer

TINY = dict(dim=16, n_blocks=1, n_heads=2, dropout=0.0, max_len=20, global_dim=12, domain_dim=8, adapter_hidden=32,
            negatives=8)


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("synthetic?n_users=120")


@pytest.fixture(scope="module")
def text_embeddings(dataset):
    """Tiny random LM embeddings of the synthetic items ([80, 32]; titles share topic words)."""
    texts = item_texts(dataset)
    tokenizer = tiny_tokenizer(texts)
    return lm_item_embeddings(tiny_lm(tokenizer), tokenizer, texts, batch_size=16)


def tiny_model(dataset, text_embeddings, **fields) -> LLM4CDSRModel:
    torch.manual_seed(0)
    return LLM4CDSRModel.from_text_embeddings(LLM4CDSRConfig(**(TINY | fields)), dataset.item_domain, text_embeddings)


# ---------------------------------------------------------------- item texts and embedders


def test_item_texts_join_title_and_attribute_words(dataset):
    texts = item_texts(dataset)
    assert len(texts) == dataset.n_items
    assert texts[0] == f"{dataset.item_titles[0]}: {' '.join(dataset.item_attributes[0])}"


def test_lm_embeddings_do_not_depend_on_padding_or_batch(dataset):
    texts = ["crimson brush 0: crimson brush", "a much longer azure stapler title: azure stapler office desk"]
    tokenizer = tiny_tokenizer(item_texts(dataset) + texts)
    assert tokenizer.padding_side == "left"  # the LLM stage's default; embedding pads on the right anyway
    model = tiny_lm(tokenizer)
    together = lm_item_embeddings(model, tokenizer, texts, batch_size=2)
    alone = np.concatenate([lm_item_embeddings(model, tokenizer, [t]) for t in texts])
    assert together.shape == (2, model.config.hidden_size) and together.dtype == np.float32
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert tokenizer.padding_side == "left"  # the caller's tokenizer is left as it was


def test_cache_recomputes_only_when_texts_or_embedder_change(tmp_path):
    calls = []

    def compute(texts):
        calls.append(list(texts))
        return np.arange(len(texts) * 3, dtype=np.float32).reshape(len(texts), 3) + len(calls)

    path = tmp_path / "cache" / "emb.safetensors"
    first = cached_item_embeddings(path, ["a", "b"], "fake", compute)
    again = cached_item_embeddings(path, ["a", "b"], "fake", compute)
    assert len(calls) == 1 and np.array_equal(first, again)
    changed = cached_item_embeddings(path, ["a", "b changed"], "fake", compute)
    assert len(calls) == 2 and not np.array_equal(first, changed)
    cached_item_embeddings(path, ["a", "b changed"], "other-embedder", compute)
    assert len(calls) == 3
    path.write_bytes(b"not a safetensors file")
    with pytest.warns(UserWarning, match="unreadable embedding cache"):
        cached_item_embeddings(path, ["a", "b changed"], "other-embedder", compute)
    assert len(calls) == 4
    assert not list(path.parent.glob("*.tmp"))  # atomic writes leave no temp file


def test_item_text_embeddings_lm_goes_through_the_cache(dataset, tmp_path):
    tokenizer = tiny_tokenizer(item_texts(dataset))
    lm = (tiny_lm(tokenizer), tokenizer)
    first = item_text_embeddings(dataset, "lm", tmp_path, lm=lm, lm_name="tiny")
    assert first.shape == (dataset.n_items, 32)
    assert [p.name for p in tmp_path.iterdir()] == ["item_text_lm_tiny.safetensors"]
    np.testing.assert_array_equal(item_text_embeddings(dataset, "lm", tmp_path, lm=lm, lm_name="tiny"), first)
    with pytest.raises(ValueError, match="needs the LM"):
        item_text_embeddings(dataset, "both", tmp_path)
    with pytest.raises(ValueError, match="expected one of"):
        item_text_embeddings(dataset, "bert", tmp_path)


@pytest.mark.real
def test_minilm_loads_from_the_wheel_without_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the MiniLM embedder tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    start = time.perf_counter()
    emb = minilm_item_embeddings(["red oil paint set", "crimson acrylic paints", "black office stapler"])
    print(f"MiniLM load + 3 texts: {time.perf_counter() - start:.1f} s")
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2]  # paints are closer to paints than to a stapler


def test_pca_tables_global_and_per_domain(dataset, text_embeddings):
    assert pca_reduce(text_embeddings, 5, seed=0).shape == (dataset.n_items, 5)
    assert pca_reduce(text_embeddings[:3], 5, seed=0).shape == (3, 3)  # at most one column per row
    model = tiny_model(dataset, text_embeddings)
    n_a, n_b = (int((dataset.item_domain == d).sum()) for d in (0, 1))
    assert model.global_text.shape == (dataset.n_items, TINY["global_dim"])
    assert model.domain_text_a.shape == (n_a, TINY["domain_dim"])
    assert model.domain_text_b.shape == (n_b, TINY["domain_dim"])
    for table in (model.global_text, model.domain_text_a, model.domain_text_b):
        assert torch.allclose(table.pow(2).mean(), torch.tensor(1.0), atol=1e-4)  # unit RMS
    # Per-domain PCA is fitted on that domain's items only: centred on them.
    assert torch.allclose(model.domain_text_a.mean(0), torch.zeros(TINY["domain_dim"]), atol=1e-4)
    assert "global_text" in model.state_dict()  # a saved model scores without the embedder


def test_config_out_of_range_is_refused_with_the_field_and_expectation():
    with pytest.raises(ValueError, match=r"dim=15: expected a positive multiple of n_heads"):
        LLM4CDSRConfig(dim=15, n_heads=2).validate()
    with pytest.raises(ValueError, match=r"embedder='bert': expected one of"):
        LLM4CDSRConfig(embedder="bert").validate()
    with pytest.raises(ValueError, match=r"temperature=0"):
        LLM4CDSRConfig(temperature=0).validate()


# ---------------------------------------------------------------- the tri-thread model


def test_future_items_cannot_change_earlier_states(dataset, text_embeddings):
    model = tiny_model(dataset, text_embeddings).eval()
    a, b = dataset.items_of(0), dataset.items_of(1)
    seq = torch.tensor([[a[0], b[0], a[1], b[1], a[2], b[2]]])
    changed = seq.clone()
    changed[0, 4:] = torch.tensor([b[3], a[3]])  # other items (and domains) at positions 4 and 5 only
    with torch.no_grad():
        tables = model.item_tables()
        mixed_before, domain_before = model.encode(seq, tables)
        mixed_after, domain_after = model.encode(changed, tables)
    assert torch.allclose(mixed_before[:, :4], mixed_after[:, :4], atol=1e-6)
    assert not torch.allclose(mixed_before[:, 4:], mixed_after[:, 4:], atol=1e-6)
    for d in (0, 1):
        assert torch.allclose(domain_before[d][:, :4], domain_after[d][:, :4], atol=1e-6)


def test_domain_thread_reads_only_its_domain(dataset, text_embeddings):
    model = tiny_model(dataset, text_embeddings).eval()
    a, b = dataset.items_of(0), dataset.items_of(1)
    seq = torch.tensor([[a[0], b[0], a[1], b[1]]])
    other_b = torch.tensor([[a[0], b[5], a[1], b[6]]])
    with torch.no_grad():
        tables = model.item_tables()
        _, dom1 = model.encode(seq, tables)
        _, dom2 = model.encode(other_b, tables)
    assert torch.allclose(dom1[0], dom2[0], atol=1e-6)  # the A thread ignores B items
    assert not torch.allclose(dom1[1], dom2[1], atol=1e-6)
    assert torch.all(dom1[1][0, 0] == 0)  # no B item yet at position 0


def test_scorer_ranks_all_items_of_the_domain(dataset, text_embeddings):
    model = tiny_model(dataset, text_embeddings)
    scorer = SequenceScorer(model)
    histories = [np.array([], dtype=np.int64), dataset.users[0].items, np.tile(dataset.users[1].items, 5)]
    for d in (0, 1):
        scores = scorer.scores(histories, d)
        assert scores.shape == (3, len(dataset.items_of(d))) and torch.isfinite(scores).all()


def test_negatives_are_shared_by_every_position_of_a_batch(dataset, text_embeddings, monkeypatch):
    model = tiny_model(dataset, text_embeddings).eval()
    negatives = model.sample_negatives()
    for d in (0, 1):
        assert len(negatives[d]) == TINY["negatives"] and len(torch.unique(negatives[d])) == TINY["negatives"]
        assert np.isin(negatives[d].numpy(), dataset.items_of(d)).all()
    users = [u for u in dataset.users if len(u.items) >= 7][:3]
    inputs = torch.from_numpy(np.stack([u.items[:6] for u in users]))
    labels = torch.from_numpy(np.stack([u.items[1:7] for u in users]))
    extra = torch.full_like(labels, -1)
    labels[0, 0] = negatives[dataset.item_domain[labels[0, 0]]][0]  # a label that is also a negative: masked for it
    with torch.no_grad():
        ce = model.losses(inputs, labels, extra, negatives)["ce"]
        # By hand: every labelled position scores its label against the SAME negatives of its domain.
        tables = model.item_tables()
        mixed, per_domain = model.encode(inputs, tables)
        terms = []
        for row, col in np.ndindex(*labels.shape):
            target = int(labels[row, col])
            d = int(dataset.item_domain[target])
            state = mixed[row, col] + per_domain[d][row, col]
            candidates = [target] + [int(i) for i in negatives[d] if int(i) != target]
            logits = tables.mixed[candidates] @ state / TINY["dim"] ** 0.5
            terms.append(-torch.log_softmax(logits, 0)[0])
    assert torch.allclose(ce, torch.stack(terms).mean(), atol=1e-5)
    draws = []
    monkeypatch.setattr(model, "sample_negatives", lambda: draws.append(1) or negatives)
    model.losses(inputs, labels, extra)
    assert len(draws) == 1  # one draw per batch, not per position or per row


def test_contrastive_term_trains_the_adapter(dataset, text_embeddings):
    model = tiny_model(dataset, text_embeddings, dropout=0.0)
    items = torch.arange(dataset.n_items)
    loss = model.contrastive_loss(items, model.item_tables())
    loss.backward()
    assert model.global_adapter.mlp[0].weight.grad.abs().sum() > 0
    assert model.text_head.weight.grad.abs().sum() > 0
    optimizer = torch.optim.Adam(list(model.global_adapter.parameters()) + list(model.text_head.parameters()), lr=1e-2)
    values = []
    for _ in range(15):
        loss = model.contrastive_loss(items, model.item_tables())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        values.append(loss.item())
    print(f"contrastive loss over 15 Adam steps: {values[0]:.3f} -> {values[-1]:.3f}")
    assert values[-1] < 0.5 * values[0]
    one_domain = torch.from_numpy(dataset.items_of(0))
    with torch.no_grad():
        assert model.contrastive_loss(one_domain, model.item_tables()).item() == 0.0  # no other-domain negatives


# ---------------------------------------------------------------- end to end


def test_training_end_to_end_beats_popularity_on_valid(dataset, text_embeddings):
    cfg = LLM4CDSRConfig(**(TINY | dict(dropout=0.1, negatives=16)))
    fit_cfg = FitConfig(epochs=12, batch_size=32, lr=3e-3, patience=5, seed=0, progress=False)
    start = time.perf_counter()
    model, result = train_llm4cdsr(dataset, cfg, fit_cfg, text_embeddings)
    print(f"LLM4CDSR tiny training: {time.perf_counter() - start:.1f} s, best epoch {result.best_epoch}")
    assert not model.training and 1 <= result.best_epoch <= len(result.history)
    assert all(np.isfinite(h["total"]) and np.isfinite(h["contrastive"]) for h in result.history)
    popularity = evaluate(Popularity(dataset, dataset.splits["train"]), dataset, "valid")["overall"]
    valid = evaluate(SequenceScorer(model), dataset, "valid")["overall"]
    assert valid == result.best_valid["overall"]  # the returned weights are the selected epoch's
    assert valid["HR@10"] > popularity["HR@10"]
    test = evaluate(SequenceScorer(model), dataset, "test")["overall"]
    assert all(0.0 <= v <= 1.0 for k, v in test.items() if k != "n")


# ---------------------------------------------------------------- hierarchical profile guidance


def profiled_model(dataset, text_embeddings, users, **fields) -> LLM4CDSRModel:
    torch.manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(len(users), 24), dim=-1)
    return LLM4CDSRModel.from_text_embeddings(LLM4CDSRConfig(**(TINY | fields)), dataset.item_domain, text_embeddings,
                                              profiles=(torch.tensor(users), emb), n_users=len(dataset.users))


def test_profile_guidance_term_trains_and_needs_two_profiled_users(dataset, text_embeddings):
    from urllm.models.sequences import training_sequences

    data = training_sequences(dataset, dataset.splits["train"], TINY["max_len"])
    users = data.users[:6].tolist()
    model = profiled_model(dataset, text_embeddings, users)
    assert model.uses_user_ids and not tiny_model(dataset, text_embeddings).uses_user_ids
    rows = slice(0, 8)  # 6 profiled rows and 2 without a profile
    args = (data.inputs[rows], data.labels[rows], data.extra[rows])
    out = model.losses(*args, users=data.users[rows])
    assert out["profile"] > 0
    assert torch.allclose(out["total"], out["ce"] + 0.1 * out["contrastive"] + 0.1 * out["profile"])
    out["profile"].backward()
    assert model.profile_adapter.mlp[0].weight.grad.abs().sum() > 0  # the profile adapter learns
    assert model.mixed_encoder.blocks.layers[0].self_attn.in_proj_weight.grad.abs().sum() > 0  # and pulls on the mixed thread
    # a batch with one profiled user has no negatives: the term is 0
    one = model.losses(data.inputs[5:8], data.labels[5:8], data.extra[5:8], users=data.users[5:8])
    assert float(one["profile"].detach()) == 0.0
    # minimising the term alone aligns each profiled user's state with their own profile
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        loss = model.losses(*args, users=data.users[rows])["profile"]
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.5 * first


def test_train_llm4cdsr_with_profiles_passes_each_rows_user(dataset, text_embeddings, monkeypatch):
    from urllm.models.sequences import training_sequences

    seen = []
    original = LLM4CDSRModel.losses

    def spy(self, *args, users=None, **kw):
        seen.append(users)
        return original(self, *args, users=users, **kw)

    monkeypatch.setattr(LLM4CDSRModel, "losses", spy)
    users = training_sequences(dataset, dataset.splits["train"], TINY["max_len"]).users[:20]
    emb = torch.nn.functional.normalize(torch.randn(len(users), 24), dim=-1)
    model, result = train_llm4cdsr(dataset, LLM4CDSRConfig(**TINY), FitConfig(epochs=1, batch_size=32, progress=False),
                                   text_embeddings, profiles=(users, emb))
    assert seen and all(u is not None for u in seen)
    assert "profile" in result.history[0]
    with pytest.raises(ValueError, match="n_users"):
        LLM4CDSRModel.from_text_embeddings(LLM4CDSRConfig(**TINY), dataset.item_domain, text_embeddings,
                                           profiles=(torch.tensor([999]), emb[:1]), n_users=len(dataset.users))
