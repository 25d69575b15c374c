"""Generation speed of URLLM's variants on a run's test lines: the one-line search as it
was (runs to max_new_tokens), with free answers ending at a title's end, and batched
(several lines' searches share each forward pass); per-variant lines/s; and the ratio
against what a user would reach for, HF `generate(..., prefix_allowed_tokens_fn=...)`
with the same tries, model, prompts and beams, on the same lines.

    .venv/bin/python benchmarks/generation_speed.py --run artifacts/demo --lines 50
    .venv/bin/python benchmarks/generation_speed.py --run artifacts/demo --lines 50 --hf   # + HF generate

Prints seconds per line of each mode, how many lines give the same lists as the one-line
search, and peak RSS. Uses the run's base LM, LoRA adapter, prompts (k neighbours) and
generation dtype.
"""
from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from urllm.app.live import LiveModel  # noqa: E402
from urllm.app.reader import RunData  # noqa: E402
from urllm.llm.generate import VARIANTS, Generator  # noqa: E402
from urllm.llm.trie import TitleTrie  # noqa: E402
from urllm.methods.urllm_stage2 import sample_lines  # noqa: E402

SEARCHED = ("free", "constrained", "candidates")  # refined reuses free's beams


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def run_mode(generator: Generator, jobs, batch: int, variants=VARIANTS):
    out = []
    for s in range(0, len(jobs), batch):
        out += generator.run_many(jobs[s : s + batch], variants)
    return out


def lists(generations) -> list[dict]:
    return [{v: g.ranking for v, g in gens.items()} for gens in generations]


def hf_generate(live: LiveModel, generator: Generator, jobs) -> float:
    """Seconds for HF beam search (free, title trie, candidate trie) on every job."""
    c, tok, model = generator.cfg, live.tokenizer, live.model
    stops, free_max = generator.free_limits()

    def allowed_by(trie: TitleTrie, prompt_len: int):
        def fn(batch_id, input_ids):
            node = trie.root
            for t in input_ids[prompt_len:].tolist():
                node = node.get(t) if node else None
            return TitleTrie.allowed(node) or [trie.eos_id]
        return fn

    start = time.perf_counter()
    for text, domain, ranking in jobs:
        ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]], device=model.device)
        common = dict(num_beams=c.num_beams, num_return_sequences=c.num_beams, do_sample=False, pad_token_id=tok.eos_token_id,
                      attention_mask=torch.ones_like(ids))
        with torch.inference_mode():
            model.generate(ids, max_new_tokens=free_max, eos_token_id=[tok.eos_token_id, *sorted(stops)], **common)
            for trie in (generator.domain_trie(domain), generator.candidate_trie(ranking[: c.candidates])):
                model.generate(ids, max_new_tokens=c.max_new_tokens, eos_token_id=tok.eos_token_id,
                               prefix_allowed_tokens_fn=allowed_by(trie, ids.shape[1]), **common)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run folder, e.g. artifacts/demo")
    parser.add_argument("--lines", type=int, default=50, help="seeded sample of test lines")
    parser.add_argument("--batch", type=int, default=16, help="lines searched together")
    parser.add_argument("--k", type=int, default=None, help="neighbours in the prompt (default: the run's)")
    parser.add_argument("--hf", action="store_true", help="also time HF generate on the same lines")
    parser.add_argument("--skip-old", action="store_true", help="skip the one-line search to max_new_tokens")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    folder = Path(args.run)
    run = RunData.open(folder.name, folder.parent)
    (live, load_s) = timed(lambda: LiveModel.load(run))
    k = args.k if args.k is not None else int(run.generations.get("k", run.config.get("llm", {}).get("k", 1)))
    lines = [run.test_lines[i] for i in sample_lines(len(run.test_lines), args.lines, 0)]
    jobs = [(live.prompt(ln, run.neighbours(ln, k)).text, ln.domain, run.dual_graph_top(ln)) for ln in lines]
    cfg = live.generation_config
    print(f"run {run.name}: {len(jobs)} test lines, k={k}, beams {cfg.num_beams}, dtype {cfg.dtype}, "
          f"model load {load_s:.1f} s, {torch.get_num_threads()} threads")

    make = lambda **changes: Generator(live.model, live.tokenizer, live.dataset, dataclasses.replace(cfg, **changes))  # noqa: E731
    alone = make(batch_lines=1)
    batched = make(batch_lines=args.batch)
    batched.titles = alone.titles  # BM25 index built once
    (stops, free_max), limits_s = timed(alone.free_limits)
    batched._free_limits = alone._free_limits
    alone.domain_trie(0), alone.domain_trie(1)
    batched._domain_tries = alone._domain_tries
    print(f"free answers end at {len(stops)} newline tokens or {free_max} tokens (max_new_tokens {cfg.max_new_tokens}); "
          f"limits computed in {limits_s:.1f} s")

    rows = []
    if not args.skip_old:
        old = make(batch_lines=1, stop_at_title_end=False)
        old.titles, old._domain_tries = alone.titles, alone._domain_tries
        _, s = timed(lambda: run_mode(old, jobs, 1))
        rows.append(("one line at a time, free text to max_new_tokens (before)", s))
    one, s_one = timed(lambda: run_mode(alone, jobs, 1))
    rows.append(("one line at a time, free text ends at a title's end", s_one))
    many, s_many = timed(lambda: run_mode(batched, jobs, args.batch))
    rows.append((f"{args.batch} lines at a time (batched), same stop", s_many))
    for name, seconds in rows:
        print(f"  {name:<60} {seconds / len(jobs):6.3f} s/line  {len(jobs) / seconds:6.2f} lines/s")
    same = {v: sum(a[v] == b[v] for a, b in zip(lists(one), lists(many))) for v in VARIANTS}
    print("  batched lists equal to one-line lists: " + ", ".join(f"{v} {n}/{len(jobs)}" for v, n in same.items()))

    print("per variant alone, batched:")
    for variant in SEARCHED:
        _, s = timed(lambda: run_mode(batched, jobs, args.batch, (variant,)))
        print(f"  {variant:<12} {s / len(jobs):6.3f} s/line  {len(jobs) / s:6.2f} lines/s")

    if args.hf:
        s_hf = hf_generate(live, alone, jobs)
        print(f"HF generate (free + title trie + candidate trie via prefix_allowed_tokens_fn): {s_hf / len(jobs):.3f} s/line; "
              f"batched search is {s_hf / s_many:.1f}x faster per line")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
