"""LLM-stage speed on this CPU, with the shipped SmolLM2-135M-Instruct:

- constrained vs unconstrained beam search, same beams, same prompt: per-token decode
  time and the ratio (target: the trie costs at most 1.15x);
- top-10 constrained generation for one user with a ~512-token prompt, end to end
  (target: under 2 s; the prompt is prefilled once and its KV cache shared by the beams);
- LoRA fine-tuning throughput in tokens/s.

    .venv/bin/python benchmarks/llm_speed.py [--data DIR] [--repeats 3]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from urllm.data import load_dataset  # noqa: E402
from urllm.llm.base import load_base_model  # noqa: E402
from urllm.llm.beam import beam_search  # noqa: E402
from urllm.llm.finetune import LoraTrainConfig, add_lora, encode_example, train_lora  # noqa: E402
from urllm.llm.generate import GenerationConfig, Generator, for_generation  # noqa: E402
from urllm.llm.prompt import PromptBuilder, PromptConfig, answer_text  # noqa: E402


def timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/amazon-art-office"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--beams", type=int, default=10)
    parser.add_argument("--lora-steps", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(2)
    ds = load_dataset(f"urllm:{args.data}")
    t0 = time.perf_counter()
    model, tok = load_base_model("smollm2")
    print(f"SmolLM2 loaded in {time.perf_counter() - t0:.2f} s")
    builder = PromptBuilder(ds, tok, PromptConfig(max_tokens=512, max_history=60, max_neighbor_items=60))
    ex = max(ds.splits["test"][:200], key=lambda e: len(e.history))
    neighbours = [u.items for u in ds.users[:3]]  # enough items to fill the budget
    prompt = builder.build(ex.history, ex.domain, neighbours)
    ids = tok(prompt.text, add_special_tokens=False)["input_ids"]
    print(f"prompt: {len(ids)} tokens {prompt.tokens}")
    gen = Generator(model, tok, ds, GenerationConfig(num_beams=args.beams, dtype="float32"))
    t0 = time.perf_counter()
    trie = gen.domain_trie(ex.domain)
    print(f"title trie for {ds.domains[ex.domain]}: {trie.n_titles} titles in {time.perf_counter() - t0:.1f} s")

    # Decode cost per token: fixed length (no eos stop) so both searches do the same steps.
    steps = 12
    with torch.no_grad():
        prefill_s, _ = timed(lambda: model(torch.tensor([ids]), use_cache=True), args.repeats)
    free_stats, cons_stats = {}, {}
    free_s, free = timed(lambda: beam_search(model, ids, -1, args.beams, steps, stats=free_stats), args.repeats)
    cons_s, cons = timed(lambda: beam_search(model, ids, tok.eos_token_id, args.beams, 48, trie, stats=cons_stats), args.repeats)
    cons_tokens = cons_stats["steps"]
    per_free = (free_s - prefill_s) / free_stats["steps"]
    per_cons = (cons_s - prefill_s) / max(1, cons_tokens)
    print(f"prefill {len(ids)} tokens: {prefill_s:.3f} s")
    print(f"unconstrained beam search ({args.beams} beams, {steps} steps): {free_s:.3f} s, {per_free * 1000:.1f} ms per token")
    print(f"constrained   beam search ({args.beams} beams, {cons_tokens} tokens in {cons_stats['forwards']} forward passes): "
          f"{cons_s:.3f} s, {per_cons * 1000:.1f} ms per token")
    print(f"trie overhead per token: {per_cons / per_free:.2f}x (target <= 1.15x)")
    top10_s, out = timed(lambda: gen.run(prompt.text, ex.domain, [], variants=("constrained",)), args.repeats)
    titles = [o.text for o in out["constrained"].outputs]
    print(f"top-{args.beams} constrained generation, one user, {len(ids)}-token prompt, float32: {top10_s:.2f} s")
    print("  e.g. " + " | ".join(titles[:3]))
    cfg16 = GenerationConfig(num_beams=args.beams, dtype="bfloat16")
    gen16 = Generator(for_generation(copy.deepcopy(model), cfg16), tok, ds, cfg16, titles=gen.titles)
    gen16._domain_tries = gen._domain_tries  # the same tries (tokenizer-only)
    top10_16, out16 = timed(lambda: gen16.run(prompt.text, ex.domain, [], variants=("constrained",)), args.repeats)
    same = len({o.item for o in out16["constrained"].outputs} & {o.item for o in out["constrained"].outputs})
    print(f"top-{args.beams} constrained generation, one user, {len(ids)}-token prompt, bfloat16 (the default): "
          f"{top10_16:.2f} s (target < 2 s); {same} of the {args.beams} titles also in the float32 top-{args.beams}")

    lora_cfg = LoraTrainConfig(steps=args.lora_steps, batch_size=4, progress=False)
    peft_model = add_lora(model, lora_cfg)
    small = PromptBuilder(ds, tok, PromptConfig(max_tokens=256))
    examples = [encode_example(tok, small.build(e.history, e.domain).text, answer_text(ds, e.target)) for e in ds.splits["train"][:16]]
    report = train_lora(peft_model, tok, examples, lora_cfg)
    print(f"LoRA (r={lora_cfg.r}, {lora_cfg.target_modules}): {report['tokens']} tokens in {report['seconds']:.1f} s = "
          f"{report['tokens_per_s']:.0f} tokens/s; loss {report['curve'][0]['loss']:.3f} -> {report['curve'][-1]['loss']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
