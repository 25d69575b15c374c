"""The LLM as a scorer of candidate titles (urllm/llm/candidate_scores.py), on a tiny random LM."""
import numpy as np
import pytest
import torch

from tests.llm_fixtures import tiny_lm
from urllm.llm.candidate_scores import answer_ids, score_many


def brute_force(lm, prompt: list[int], answer: list[int]) -> float:
    """Mean log-probability of `answer` after `prompt` from one plain full forward pass."""
    with torch.no_grad():
        logits = lm(input_ids=torch.tensor([prompt + answer])).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    start = len(prompt) - 1
    return float(np.mean([float(logp[start + i, t]) for i, t in enumerate(answer)]))


def jobs_of(ds, tok, n_prompts: int = 3, n_candidates: int = 6):
    gen = np.random.default_rng(0)
    out = []
    for p in range(n_prompts):
        prompt = tok(f"This user bought {ds.item_titles[p]} Answer", add_special_tokens=False)["input_ids"]
        items = gen.choice(ds.n_items, n_candidates, replace=False)
        out.append((prompt, answer_ids(tok, [ds.item_titles[i] for i in items])))
    return out


def test_answer_ids_end_with_eos_like_the_training_targets(ds, tok):
    from urllm.llm.finetune import encode_example

    ids = answer_ids(tok, [ds.item_titles[0], ds.item_titles[1]])
    assert ids[0] == encode_example(tok, "x", ds.item_titles[0]).answer_ids
    assert all(a[-1] == tok.eos_token_id for a in ids)


@pytest.mark.parametrize("shared", [True, False])
def test_scores_equal_a_plain_forward_per_candidate(ds, tok, lm, shared):
    jobs = jobs_of(ds, tok)
    got = score_many(lm, jobs, shared=shared)
    for (prompt, candidates), scores in zip(jobs, got):
        assert scores.shape == (len(candidates),)
        want = [brute_force(lm, prompt, c) for c in candidates]
        np.testing.assert_allclose(scores, want, rtol=1e-4, atol=1e-5)


def test_several_prompts_together_equal_each_alone(ds, tok, lm):
    jobs = jobs_of(ds, tok, n_prompts=4)
    together = score_many(lm, jobs)
    for job, scores in zip(jobs, together):
        np.testing.assert_allclose(scores, score_many(lm, [job])[0], rtol=1e-4, atol=1e-5)


def test_prompts_of_different_lengths_in_one_padded_prefill_equal_each_alone(ds, tok, lm):
    """The ranking loss's batched prefill (right padding, no mask) gives every prompt's
    candidates the scores a pass of its own, and a plain full forward, give them."""
    from urllm.llm.candidate_scores import shared_title_scores

    jobs = jobs_of(ds, tok, n_prompts=4)
    jobs[1] = (jobs[1][0] + jobs[1][0], jobs[1][1])  # one prompt twice as long: the others are padded
    assert len({len(p) for p, _ in jobs}) > 1
    with torch.no_grad():
        alone = shared_title_scores(lm, jobs)
        padded = shared_title_scores(lm, jobs, batch_prompts=True)
    for a, b, (prompt, candidates) in zip(alone, padded, jobs):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(b.numpy(), [brute_force(lm, prompt, c) for c in candidates], rtol=1e-4, atol=1e-5)


def test_a_one_token_answer_and_an_empty_list_are_scored(ds, tok, lm):
    prompt = tok("This user bought", add_special_tokens=False)["input_ids"]
    got = score_many(lm, [(prompt, [[tok.eos_token_id]]), (prompt, [])])
    assert got[1].shape == (0,)
    np.testing.assert_allclose(got[0], [brute_force(lm, prompt, [tok.eos_token_id])], rtol=1e-4, atol=1e-5)


def test_a_trained_answer_scores_above_the_others(ds, tok):
    """Few steps on one (prompt, title) pair make that title the best-scored candidate: the
    score is the quantity the fine-tune raises."""
    lm = tiny_lm(tok, seed=3).train()
    prompt, candidates = jobs_of(ds, tok, n_prompts=1, n_candidates=5)[0]
    target = candidates[2]
    opt = torch.optim.Adam(lm.parameters(), lr=1e-2)
    for _ in range(30):
        loss = -torch.log_softmax(lm(input_ids=torch.tensor([prompt + target])).logits[0], -1)[
            torch.arange(len(prompt) - 1, len(prompt) - 1 + len(target)), torch.tensor(target)].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    scores = score_many(lm.eval(), [(prompt, candidates)])[0]
    assert int(np.argmax(scores)) == 2
