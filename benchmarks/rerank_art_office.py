"""Does the LLM earn its place? "urllm_rerank" and its ablations on every Art-Office test line.

    .venv/bin/python benchmarks/rerank_art_office.py [--out artifacts/rerank-art-office]
        [--variants tuned_k1 ranked_k1 ...] [--valid-lines N] [--set FIELD=VALUE ...]

Builds (or reuses) only the stages the re-ranker needs in --out (data, dual_graph,
retrieval, lora, rerank: `train.py`'s own stages and config, the demo profile), then scores
each line's dual-graph top-N with the LLM once per variant (the run's LoRA, a ranking LoRA
trained here (RANKING_LORAS) or the base model; k neighbours in the prompt; for `listed_k1`
the prompt lists the candidates, LLaRA-style) on the valid
lines (which choose the fusion weight) and all test lines. From each pass four methods are
read: the fusion with calibrated LLM scores (the method), with raw LLM scores, the
calibrated fusion of the top-10 only (`--shorter`), and the LLM's order alone. Every method
is on the same 2,000 test lines: HR@1/HR@10/MRR with 95% bootstrap intervals and the paired
sign-flip test against the dual-graph model (urllm/stats.py), the lines each moved into
and out of first place, and the best any fusion weight could do, read on the test lines
(`weight_bound`: a bound on choosing the weight, not a method). Prints the table and the
seconds per pass; writes <out>/rerank_ablations.json, keeping the variants an earlier
invocation measured on the same lines with the same re-ranker config (one table for
variants measured at different times; each keeps its command). Run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from report import table  # noqa: E402  (benchmarks/report.py: the README's table format)

from urllm.io import atomic_write_json  # noqa: E402
from urllm.llm.checks import check_llm  # noqa: E402
from urllm.llm.config import RerankConfig  # noqa: E402
from urllm.methods.rerank import ScoredLines, TitleScorer, choose_weight, rankings, score_lines  # noqa: E402
from urllm.methods.urllm_stage2 import sample_lines  # noqa: E402
from urllm.models.evaluation import CompletedRanks  # noqa: E402
from urllm.pipeline.config import resolve, to_dict  # noqa: E402
from urllm.pipeline.context import Context  # noqa: E402
from urllm.pipeline.stages import run_pipeline  # noqa: E402
from urllm.pipeline.writer import Run  # noqa: E402
from urllm.stats import compare, line_values, paired_test  # noqa: E402

DATASET = "urllm:" + str(ROOT.parent / "shared/data/amazon-art-office")
# The LoRAs trained here with the ranking loss (finetune.RankLoss): their overrides on top of
# --set. Each is saved to <out>/lora_<name> and reused by a later invocation with the same overrides.
RANKING_LORAS = {
    "ranked": ["llm.lora.negatives=5", "llm.train_lines=200", "llm.lora.steps=50"],  # 200 examples seen once
    "ranked_mid": ["llm.lora.negatives=5", "llm.train_lines=400", "llm.lora.steps=100"],  # 400 seen once
    "ranked_long": ["llm.lora.negatives=9", "llm.train_lines=1000", "llm.lora.steps=250"],  # 1,000 seen once, 9 negatives
}
# name -> (LM, k, listed): "tuned" the run's LoRA (answer loss), a RANKING_LORAS name, "base" no
# adapter; k neighbours in the prompt; listed: the prompt lists the candidates (llm.rerank.list_candidates)
VARIANTS = {"tuned_k1": ("tuned", 1, False), "ranked_k1": ("ranked", 1, False), "base_k1": ("base", 1, False),
            "tuned_k0": ("tuned", 0, False), "tuned_k3": ("tuned", 3, False), "ranked_mid_k1": ("ranked_mid", 1, False),
            "ranked_long_k1": ("ranked_long", 1, False), "listed_k1": ("tuned", 1, True)}
METRICS = ("HR@1", "HR@10", "MRR")


def llm_only(scored) -> list[list[int]]:
    """The candidates by the LLM's calibrated score alone (ties in dual-graph order)."""
    return [[c[i] for i in np.argsort(-np.asarray(s), kind="stable")] for c, s in zip(scored.candidates, scored.llm)]


def with_scores(scored, which: str):
    """A copy of `scored` whose `llm` field is its raw (uncalibrated) scores."""
    return dataclasses.replace(scored, llm=scored.raw) if which == "raw" else scored


def shorter(scored, n: int):
    """`scored` with each line's first n candidates only (the dual-graph top-n): what the
    re-ranker does with llm.rerank.candidates = n, read from the same scores (a title's
    score does not depend on the other candidates)."""
    return dataclasses.replace(scored, candidates=[c[:n] for c in scored.candidates], dual=[d[:n] for d in scored.dual],
                               llm=[x[:n] for x in scored.llm], raw=[x[:n] for x in scored.raw])


def read_pass(name: str, valid, test, ds, rc, test_ranker, shorter_n: list[int], ranks: dict) -> dict:
    """The methods read from one variant's scores, into `ranks` (test rank per line): the
    calibrated and the raw fusion, the calibrated fusion of the top-n only, the LLM alone;
    each weight chosen on the valid lines. Returns the chosen weights and their MRR grids."""
    def ranked(lines, orders):
        return np.array([test_ranker.rank(line, r) for line, r in zip(lines, orders)], np.float64)

    chosen = {}
    reads = {which: (with_scores(valid, which), with_scores(test, which)) for which in ("calibrated", "raw")}
    reads |= {f"calibrated_top{n}": (shorter(valid, n), shorter(test, n)) for n in shorter_n if n < rc.candidates}
    for which, (v, t) in reads.items():
        weight, grid = choose_weight(ds, v, rc.weights)
        chosen[which] = {"weight": weight, "valid_MRR": grid}
        ranks[f"{name}_{which}"] = ranked(t.lines, rankings(t, weight))
    ranks[f"{name}_llm_only"] = ranked(test.lines, llm_only(test))
    return chosen


def as_json(ranks: np.ndarray) -> list[int | None]:
    """A method's test ranks for the file: None where the target is outside every list."""
    return [None if not np.isfinite(x) else int(x) for x in ranks]


def saved(valid, test) -> dict:
    return {split: {"lines": x.lines, "candidates": x.candidates, "dual": [np.round(d, 6).tolist() for d in x.dual],
                    "llm": [np.round(v, 6).tolist() for v in x.llm], "raw": [np.round(v, 6).tolist() for v in x.raw]}
            for split, x in (("valid", valid), ("test", test))}


def from_saved(entry: dict, split: str) -> ScoredLines:
    x = entry[split]
    return ScoredLines(split, x["lines"], x["candidates"], [np.asarray(d) for d in x["dual"]],
                       [np.asarray(v) for v in x["llm"]], [np.asarray(v) for v in x["raw"]], [[] for _ in x["lines"]])


def with_earlier(report: dict, path: Path) -> dict:
    """`report` plus the variants an earlier invocation wrote to `path` and this one did not
    rerun, when both scored the same lines with the same re-ranker config (one table for
    variants measured on different days). Each variant keeps the command that measured it."""
    report["commands"] = {name: report["command"] for name in report["passes"]}
    if not path.exists():
        return report
    earlier = json.loads(path.read_text())
    # a config field added after the earlier invocation, at its default, is the same config
    same = ({**to_dict(RerankConfig()), **earlier.get("config", {})} == report["config"]
            and earlier.get("valid_lines") == report["valid_lines"]
            and earlier["ranks"]["dual_graph"] == report["ranks"]["dual_graph"])
    if not same:
        print(f"{path}: an earlier invocation on other lines or another config; its variants are not kept")
        return report
    for name, seen in earlier["passes"].items():
        if name in report["passes"]:
            continue
        report["passes"][name] = seen
        report["commands"][name] = earlier.get("commands", {}).get(name, earlier["command"])
        report.setdefault("scored", {})[name] = earlier["scored"][name]
        for method, r in earlier["ranks"].items():
            if method.startswith(name + "_"):
                report["ranks"][method] = r
        lm = seen["lm"]
        if lm in earlier.get("trained", {}) and lm not in report.get("trained", {}):
            report.setdefault("trained", {})[lm] = earlier["trained"][lm]
    return report


def top1_moves(ranks: dict[str, np.ndarray], n: int) -> dict:
    """What bounds HR@1 of a re-ranker of the dual-graph top-n: the test lines whose target is
    in that list (`ceiling`) and at its first place, and per method the lines it moved into
    first place (`up`) and out of it (`down`): HR@1's paired test is decided by these two."""
    dual = ranks["dual_graph"]
    out = {"ceiling": {"in_top_n": int((dual <= n).sum()), "first": int((dual == 1).sum()), "n": n, "lines": len(dual)}}
    for method, r in ranks.items():
        if method != "dual_graph":
            out[method] = {"up": int(((r == 1) & (dual > 1)).sum()), "down": int(((r > 1) & (dual == 1)).sum())}
    return out


def weight_bound(scored: dict, test_ranker, dual: np.ndarray, weights, shorter_n: list[int], n: int,
                 seed: int) -> dict:
    """Every weight of the grid read on the TEST lines themselves, per pass and per fused read
    (calibrated, raw, calibrated top-n): the best HR@1 and the best MRR any choice of the
    weight could have given, each with its paired test against the dual-graph model. A bound
    on what choosing the weight on more valid lines can reach, not a method. Read from the
    saved (rounded) scores, so a near tie may differ from the pass's own row by a line."""
    grid = sorted({0.0, *map(float, weights)})
    reference = line_values(dual)
    out = {}
    for name, entry in scored.items():
        test = from_saved(entry, "test")
        reads = {"calibrated": test, "raw": with_scores(test, "raw")}
        reads |= {f"calibrated_top{k}": shorter(test, k) for k in shorter_n if k < n}
        for which, t in reads.items():
            values = {w: line_values(np.array([test_ranker.rank(line, r) for line, r in zip(t.lines, rankings(t, w))]))
                      for w in grid}
            best = {}
            for metric in ("HR@1", "MRR"):  # ties go to the smaller weight, as on valid
                w = max(grid, key=lambda x: (round(float(values[x][metric].mean()), 9), -x))
                test_ = paired_test({metric: values[w][metric]}, {metric: reference[metric]}, seed)[metric]
                best[metric] = {"weight": w, "delta": round(test_["delta"], 6), "p": round(test_["p"], 4)}
            out[f"{name}_{which}"] = best
    return out


def bar(desc: str):
    from tqdm.auto import tqdm

    return lambda xs: tqdm(xs, desc=desc, mininterval=30)


def train_ranking_lora(profile: str, overrides: list[str], folder: Path) -> None:
    """Train the ranking LoRA of `overrides` and save it to `folder` (its training summary in
    training.json). Run in a child process (model_for): on Art-Office, scoring in the process
    that trained ran at 0.44 valid lines/s after the 250-step fine-tune (1.01 test lines/s
    after the 50-step one), the same adapter reloaded in a fresh process at 1.20 test lines/s;
    the training steps slowed too (6.6 s to 17 s) with memory flat. The process's state, not
    the model (adapters score alike in a fresh process); which part of it is not pinned down."""
    from urllm.llm.finetune import save_adapter
    from urllm.pipeline.stages import train_adapter

    cfg = resolve(profile, overrides)
    torch.set_num_threads(cfg.threads)
    start = time.perf_counter()
    peft_model, examples, report = train_adapter(Context(cfg, folder.parent))
    summary = {"overrides": overrides, "config": dataclasses.asdict(cfg.llm.lora), "train_lines": cfg.llm.train_lines,
               "examples": len(examples), "loss_first": report["curve"][0]["loss"],
               "loss_last": report["curve"][-1]["loss"], "seconds": round(time.perf_counter() - start, 1)}
    save_adapter(peft_model, folder, report | {"overrides": overrides, "summary": summary})


def model_for(lm: str, ctx: Context, cfg, profile: str, overrides: list[str]):
    """(the LM to score with, made ready as the rerank stage makes it, its tokenizer, and for
    a ranking LoRA its training summary). Each starts from a freshly loaded base LM: making a
    model ready folds its adapter into the base weights. A ranking LoRA is trained once with
    `overrides`, in a child process, and saved to <out>/lora_<lm>; a later call with the same
    overrides loads it."""
    import multiprocessing

    from urllm.llm.finetune import load_adapter, read_report
    from urllm.llm.generate import for_generation

    ranking = lm not in ("base", "tuned")
    folder = ctx.dir / (f"lora_{lm}" if ranking else "lora")
    if ranking and not ((folder / "training.json").is_file() and read_report(folder).get("overrides") == overrides):
        child = multiprocessing.get_context("spawn").Process(target=train_ranking_lora, args=(profile, overrides, folder))
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"training the ranking LoRA {lm!r} failed (exit code {child.exitcode}); see above")
    base, tok = ctx.fresh_lm()
    if lm == "base":
        return for_generation(base, cfg.llm.generation), tok, None
    model = for_generation(load_adapter(base, folder), cfg.llm.generation)
    return model, tok, read_report(folder)["summary"] if ranking else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "artifacts/rerank-art-office"))
    parser.add_argument("--dataset", default=DATASET, help="dataset spec (a quick check: synthetic with --profile tiny)")
    parser.add_argument("--profile", default="demo", help="config profile the overrides apply to (train.py's)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--valid-lines", type=int, default=None,
                        help="valid lines that choose the weights (a seeded sample; 0 = all; default llm.rerank.valid_lines)")
    parser.add_argument("--shorter", type=int, nargs="*", default=[10],
                        help="also read each pass with only the dual-graph top-n re-ordered (calibrated; weight re-chosen on valid)")
    parser.add_argument("--reread", action="store_true",
                        help="score nothing: read every variant saved in <out>/rerank_ablations.json again (new --shorter)")
    parser.add_argument("--set", action="append", default=[], help="config override, as train.py --set")
    args = parser.parse_args()

    cfg = resolve(args.profile, [f"dataset={args.dataset}", *args.set])
    check_llm(cfg.device, cfg.llm.base_model, cfg.llm.lora.target_modules)  # before any stage runs
    torch.set_num_threads(cfg.threads)
    start = time.perf_counter()
    with Run(Path(args.out), to_dict(cfg) | {"profile": args.profile}, ROOT) as run:
        run_pipeline(cfg, run, only={"lora"})  # the passes below are the rerank stage's, per variant
        print(run.timing_table())
    ctx = Context(cfg, Path(args.out))
    ds, rc = ctx.ds, cfg.llm.rerank
    valid_n = rc.valid_lines if args.valid_lines is None else args.valid_lines
    valid_lines = sample_lines(len(ds.splits["valid"]), valid_n, cfg.seed)  # as the rerank stage samples them
    test_lines = list(range(len(ds.splits["test"])))
    valid_ranker, test_ranker = CompletedRanks(ctx.dual_graph, ds, "valid"), CompletedRanks(ctx.dual_graph, ds, "test")
    test_ranker.prepare(test_lines)
    ranks = {"dual_graph": np.array([test_ranker.rank(line, []) for line in test_lines], np.float64)}
    report = {"command": " ".join(sys.argv), "config": to_dict(rc), "valid_lines": len(valid_lines), "passes": {}}
    if args.reread:  # every saved variant's methods read again from its scores; nothing is scored
        path = Path(args.out) / "rerank_ablations.json"
        report = json.loads(path.read_text())
        for name in report["passes"]:  # only the methods the file lacks: a saved score is rounded (1e-6;
            entry, fresh = report["scored"][name], {}  # before 2026-12-05 1e-4), which can move a near tie
            chosen = read_pass(name, from_saved(entry, "valid"), from_saved(entry, "test"), ds, rc, test_ranker,
                               args.shorter, fresh)
            report["passes"][name]["chosen"] = chosen | report["passes"][name]["chosen"]
            report["ranks"] |= {m: as_json(r) for m, r in fresh.items() if m not in report["ranks"]}
        report.setdefault("rereads", []).append(" ".join(sys.argv))
    for name in [] if args.reread else args.variants:
        lm, k, listed = VARIANTS[name]
        overrides = [f"dataset={args.dataset}", *args.set, *RANKING_LORAS.get(lm, [])]
        model, tok, trained = model_for(lm, ctx, cfg, args.profile, overrides)
        if trained:
            report.setdefault("trained", {})[lm] = trained
        scorer = TitleScorer(model, tok, ds, ctx.prompts, dataclasses.replace(rc, list_candidates=listed))
        t0 = time.perf_counter()
        valid = score_lines(scorer, ctx.neighbours, ctx.rankings["valid_top"], valid_ranker, valid_lines, k, "valid",
                            progress=bar(f"{name} valid"))
        t1 = time.perf_counter()
        test = score_lines(scorer, ctx.neighbours, ctx.rankings["test_top"], test_ranker, test_lines, k, "test",
                           progress=bar(f"{name} test"))
        t2 = time.perf_counter()
        chosen = read_pass(name, valid, test, ds, rc, test_ranker, args.shorter, ranks)
        report.setdefault("scored", {})[name] = saved(valid, test)  # for offline reads (--reread) without rescoring
        report["passes"][name] = {"lm": lm, "k": k, "listed": listed, "valid_s": round(t1 - t0, 1),
                                  "test_s": round(t2 - t1, 1), "test_lines_per_s": round(len(test_lines) / (t2 - t1), 2), "chosen": chosen}
        print(f"{name}: valid {t1 - t0:.0f} s, test {t2 - t1:.0f} s ({len(test_lines) / (t2 - t1):.2f} lines/s); "
              f"weights {chosen['calibrated']['weight']:g} (calibrated), {chosen['raw']['weight']:g} (raw)", flush=True)
        del model, scorer
    if not args.reread:
        report["ranks"] = {m: as_json(r) for m, r in ranks.items()}
        report["seconds"] = round(time.perf_counter() - start, 1)
        report = with_earlier(report, Path(args.out) / "rerank_ablations.json")
    ranks = {m: np.array([np.inf if x is None else x for x in r], np.float64) for m, r in report["ranks"].items()}
    domains = np.array([ex.domain for ex in ds.splits["test"]])
    metrics = compare(ranks, domains, ds.domains, cfg.seed, line_set="every test line")
    report["metrics"] = metrics
    report["top1_moves"] = moves = top1_moves(ranks, rc.candidates)
    report["weight_bound"] = bound = weight_bound(report["scored"], test_ranker, ranks["dual_graph"], rc.weights,
                                                  args.shorter, rc.candidates, cfg.seed)
    atomic_write_json(Path(args.out) / "rerank_ablations.json", report)
    print("\n" + table(metrics, list(METRICS), "overall"))
    c = moves["ceiling"]
    print(f"\ntargets in the dual-graph top-{c['n']}: {c['in_top_n']} of {c['lines']} test lines, {c['first']} of them first; "
          "lines moved into / out of first place: " + ", ".join(f"{m} {v['up']}/{v['down']}" for m, v in moves.items()
                                                              if m != "ceiling"))
    print("\nthe weight chosen on the TEST lines (a bound on any choice, not a method): best ΔHR@1 (p), best ΔMRR (p)")
    for method, b in bound.items():
        print(f"  {method}: {b['HR@1']['delta']:+.4f} (p {b['HR@1']['p']:.3f}, w {b['HR@1']['weight']:g}), "
              f"{b['MRR']['delta']:+.4f} (p {b['MRR']['p']:.3f}, w {b['MRR']['weight']:g})")
    print(f"\nwall {time.perf_counter() - start:.0f} s{' (a reread: nothing scored)' if args.reread else ''}; "
          f"{len(test_lines)} test lines, {len(valid_lines)} valid lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
