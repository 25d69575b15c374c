"""The app's one door to runs: find them under artifacts/ and read their files, each held
to its shape in urllm/schema.py, with a clear message (naming the file relative to
the artifacts folder, and the place in it) when something is missing, corrupt or of the
wrong shape. Imports no training code; the LLM for live generation is loaded by
urllm/app/live.py.

    run = RunData.open("demo")            # RunError if the manifest is missing/corrupt
    run.check()                           # RunError naming the first malformed file of the run
    line = run.line_of("1234", "heart")   # a test line of that user and target domain
    run.history(line), run.target(line), run.dual_graph_top(line), run.neighbours(line, run.main_k)
    run.metric_tables()                   # metrics to set side by side: each table on one line set
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from itertools import chain
from pathlib import Path

import numpy as np

from urllm.app.safe_text import relative_paths
from urllm.metrics import rank_in_list
from urllm.schema import (
    ANY,
    JSON_FILES,
    LEGACY_PROJECTIONS,
    MANIFEST,
    PROJECTION_TENSORS,
    PROJECTION_USER_TENSORS,
    TENSOR_FILES,
    ShapeError,
    check,
    main_k,
)
from urllm.stats import common_lines, compare

DEFAULT_ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
COLD_START_ITEMS = 2  # a line is "cold-start" when its history holds at most this many target-domain items


LEGACY_NOTE = ("This run predates per-line ranks (it has no line_ranks.json): its methods were scored on different "
               "test lines, so each table below holds only the methods scored on the same number of lines, without "
               "intervals. Rerunning the same train.py command adds the per-line ranks, puts every method on the "
               "same lines and adds 95% intervals and paired tests.")


class RunError(Exception):
    """A run file is missing, corrupt or of the wrong shape. `file`: its path relative to the
    artifacts folder ("demo/data.json"), so messages keep the server's paths to themselves."""

    def __init__(self, problem: str, file: str | None = None):
        super().__init__(f"{file}: {problem}" if file else problem)
        self.problem, self.file = problem, file


@dataclass(frozen=True)
class MetricTable:
    """Methods whose metrics may be set side by side: all scored on the same test lines."""

    metrics: dict  # method -> manifest-style {"overall": {...}, <domain>: {...}}, with ci95 / vs_dual_graph when known
    n: int  # test lines each method here was scored on
    caption: str  # names the line set
    legacy: bool = False  # an older run's manifest numbers, grouped by line count


def artifacts_dir() -> Path:
    """The runs folder: URLLM_ARTIFACTS when set (tests use a tmp dir), else artifacts/."""
    return Path(os.environ.get("URLLM_ARTIFACTS") or DEFAULT_ARTIFACTS)


def artifacts_name() -> str:
    """The runs folder as messages name it, without the server's absolute path."""
    return "$URLLM_ARTIFACTS" if os.environ.get("URLLM_ARTIFACTS") else "artifacts"


def list_runs(artifacts: Path | None = None) -> list[str]:
    """Names of the run folders that hold a manifest, newest first."""
    found = [p.parent for p in Path(artifacts or artifacts_dir()).glob("*/manifest.json")]
    return [p.name for p in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)]


def read_json(path: Path, label: str | None = None, shape=ANY):
    """A JSON file held to `shape` (urllm/schema.py); `label`: the name messages give it."""
    label = label or Path(path).name
    if not path.is_file():
        raise RunError("file is missing", label)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunError(f"corrupt JSON ({err})", label) from None
    except OSError as err:
        raise RunError(f"cannot be read ({err.strerror})", label) from None
    try:
        check(data, shape)
    except ShapeError as err:
        raise RunError(str(err), label) from None
    return data


def _check_tensors(shapes: dict[str, list[int]], expected: dict[str, int], label: str) -> None:
    for key, ndim in expected.items():
        if key not in shapes:
            raise RunError(f"no {key!r} tensor", label)
        if len(shapes[key]) != ndim:
            raise RunError(f"{key} expected {ndim} dimensions, got {len(shapes[key])}", label)


def tensor_shapes(path: Path, label: str | None = None, expected: dict[str, int] | None = None) -> dict[str, list[int]]:
    """{tensor: shape} from a safetensors file's header (the data is not read)."""
    from safetensors import SafetensorError, safe_open

    label = label or Path(path).name
    if not path.is_file():
        raise RunError("file is missing", label)
    try:
        with safe_open(str(path), "np") as f:
            shapes = {key: f.get_slice(key).get_shape() for key in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise RunError(f"corrupt safetensors file ({err})", label) from None
    _check_tensors(shapes, expected or {}, label)
    return shapes


def read_tensors(path: Path, label: str | None = None, expected: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """A safetensors file's tensors; `expected`: {tensor: number of dimensions} it must hold."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    label = label or Path(path).name
    if not path.is_file():
        raise RunError("file is missing", label)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise RunError(f"corrupt safetensors file ({err})", label) from None
    _check_tensors({k: v.shape for k, v in tensors.items()}, expected or {}, label)
    return tensors


def load_manifest(name: str, artifacts: Path | None = None) -> dict:
    return read_json(Path(artifacts or artifacts_dir()) / name / "manifest.json", f"{name}/manifest.json", MANIFEST)


_REQUIRED = object()  # RunData.json_file's default: the run must have the file


@dataclass(frozen=True)
class Line:
    """One test line: `user` (dataset index) wants a new item of `domain`; `index` is its row
    in the test split (and in every per-line file of the run)."""

    index: int
    user: int
    domain: int
    target: int
    history: tuple[int, ...]


class RunData:
    """Read-only view of one run folder. Every file is read on first use."""

    def __init__(self, run_dir: Path, manifest: dict):
        self.dir, self.manifest = Path(run_dir), manifest
        self.name = self.dir.name
        self._json: dict[str, object] = {}  # run file -> its checked content

    def label(self, file: str) -> str:
        """A run file as messages name it: relative to the artifacts folder ("demo/data.json")."""
        return f"{self.name}/{file}"

    def json_file(self, file: str, default=_REQUIRED):
        """A JSON file of the run (path relative to the run folder), read once and held to its
        shape in run_schema.JSON_FILES; `default` when the run lacks it (a stage it skipped or
        has not reached yet), RunError when it is required."""
        if file not in self._json:
            path = self.dir / file
            if default is not _REQUIRED and not path.is_file():
                return default
            self._json[file] = read_json(path, self.label(file), JSON_FILES[file])
        return self._json[file]

    def tensors(self, file: str) -> dict[str, np.ndarray]:
        return read_tensors(self.dir / file, self.label(file), TENSOR_FILES[file])

    def check(self) -> RunData:
        """Read and check every JSON file the run has and the header of each of its
        safetensors files, so that a malformed file is named as soon as the run is opened
        (the app does this once per run), never midway through a page."""
        for file in JSON_FILES:
            self.json_file(file, None)
        for file, expected in TENSOR_FILES.items():
            if (self.dir / file).is_file():
                tensor_shapes(self.dir / file, self.label(file), expected)
        if (self.dir / "projections.safetensors").is_file():
            self.projection_spaces  # noqa: B018 (read for its per-space tensor checks)
        if (self.dir / "data.json").is_file():
            self._data  # noqa: B018 (read for its index checks)
            self.line_ranks  # noqa: B018 (read for its lengths and ranks)
        return self

    @classmethod
    def open(cls, name: str, artifacts: Path | None = None) -> RunData:
        return cls(Path(artifacts or artifacts_dir()) / name, load_manifest(name, artifacts))

    def has(self, stage: str) -> bool:
        return any(s["name"] == stage for s in self.manifest["stages"])

    @property
    def config(self) -> dict:
        return self.manifest["config"]

    @property
    def metrics(self) -> dict:
        return self.manifest.get("metrics") or {}

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    # ---- line_ranks.json -----------------------------------------------------------------
    @cached_property
    def line_ranks(self) -> dict[str, np.ndarray] | None:
        """method -> the target's full 1-based rank on every test line (NaN where the method
        was not scored); None for a run made before the evaluation stage wrote the table."""
        data = self.json_file("line_ranks.json", None)
        if data is None:
            return None
        label, n = self.label("line_ranks.json"), len(self.test_lines)
        if not data["methods"]:
            raise RunError("no method in its 'methods' table", label)
        out = {}
        for method, ranks in data["methods"].items():
            r = np.array([np.nan if v is None else v for v in ranks], np.float64)
            if len(r) != n:
                raise RunError(f"{method!r} has {len(r)} ranks for the run's {n} test lines", label)
            if (r < 1).any():
                raise RunError(f"{method!r} has a rank below 1 (ranks are 1-based)", label)
            out[method] = r
        return out

    def metric_tables(self, lines=None) -> list[MetricTable]:
        """The run's metrics in tables that each hold one line set (DESIGN 2.7). With
        line_ranks.json: one table, every method of the manifest on the lines all of them
        were scored on; `lines` (test-line indices, e.g. a filter's rows) restricts it to
        those, rescored from the per-line ranks. An older run: its manifest numbers grouped
        by line count (legacy), and no table for a subset (nothing to rescore it from)."""
        stored, ranks = self.metrics, self.line_ranks
        if ranks is None:
            return [] if lines is not None else group_by_line_count(stored, len(self.test_lines))
        table = {m: ranks[m] for m in stored if m in ranks}  # the evaluation stage writes both: the same methods
        if not table:
            return []
        keep = common_lines(table)
        total = len(keep)
        if lines is not None:
            chosen = np.zeros(total, bool)
            chosen[np.asarray(list(lines), np.int64)] = True
            keep &= chosen
        n = int(keep.sum())
        if n == 0:
            return []
        if lines is None and all(stored[m].get("lines", {}).get("n") == n and "ci95" in stored[m].get("overall", {})
                                 for m in table):
            metrics = {m: stored[m] for m in table}  # what train.py computed on these very lines
        else:
            domains = np.array([ln.domain for ln in self.test_lines])
            metrics = compare({m: r[keep] for m, r in table.items()}, domains[keep], self.domains, self.seed)
            if lines is None:  # answer rates are per LLM answer, not per line: the manifest's stand
                for m, v in metrics.items():
                    v["overall"] |= {k: x for k, x in stored[m].get("overall", {}).items() if k.endswith("_rate")}
        if lines is not None:
            picked = len(set(lines))
            where = (f"the {picked} lines the filters select" if n == picked else
                     f"the {n} of the {picked} lines the filters select that every method was scored on")
        else:
            where = "every test line of the run" if n == total else f"the {n} of the run's {total} test lines every method was scored on"
        return [MetricTable(metrics, n, f"Every method on the same {n} test lines: {where}.")]

    # ---- data.json ---------------------------------------------------------------------
    @cached_property
    def _data(self) -> dict:
        data = self.json_file("data.json")
        _check_indexes(data, self.label("data.json"))
        return data

    @property
    def domains(self) -> list[str]:
        return self._data["domains"]

    @property
    def titles(self) -> list[str]:
        return self._data["items"]["title"]

    @cached_property
    def item_domain(self) -> np.ndarray:
        return np.asarray(self._data["items"]["domain"], np.int8)

    @cached_property
    def user_ids(self) -> list[str]:
        return [u["id"] for u in self._data["users"]]

    @cached_property
    def _user_index(self) -> dict[str, int]:
        return {u: i for i, u in enumerate(self.user_ids)}

    def user_items(self, user: int) -> np.ndarray:
        return np.asarray(self._data["users"][user]["items"], np.int64)

    def lines(self, split: str = "test") -> list[Line]:
        return [Line(i, u, d, t, tuple(h)) for i, (u, d, t, h) in enumerate(self._data["lines"][split])]

    @cached_property
    def test_lines(self) -> list[Line]:
        return self.lines("test")

    def user_index(self, raw_id: str) -> int | None:
        return self._user_index.get(str(raw_id))

    def lines_of(self, raw_id: str) -> list[Line]:
        """The test lines of a user (one per target domain they are evaluated on)."""
        user = self.user_index(raw_id)
        return [ln for ln in self.test_lines if ln.user == user]

    def line_of(self, raw_id: str, domain: str | None = None) -> Line | None:
        lines = self.lines_of(raw_id)
        match = [ln for ln in lines if domain is None or self.domains[ln.domain] == domain]
        return (match or lines or [None])[0]

    def cold_start(self, line: Line) -> bool:
        return int((self.item_domain[list(line.history)] == line.domain).sum()) <= COLD_START_ITEMS

    def item_label(self, item: int) -> str:
        return f"[{self.domains[int(self.item_domain[item])]}] {self.titles[item]}"

    def dataset(self):
        """The run's data as a urllm Dataset (for the prompt builder and the generator)."""
        from urllm.data.dataset import Dataset, Example, User

        d = self._data
        users = [User(u["id"], np.asarray(u["items"], np.int64), np.arange(len(u["items"]), dtype=np.int64)) for u in d["users"]]
        splits = {s: [Example(u, dom, np.asarray(h, np.int64), t) for u, dom, t, h in rows] for s, rows in d["lines"].items()}
        return Dataset(self.manifest["dataset"].get("spec", self.name), tuple(self.domains), list(self.titles),
                       self.item_domain.copy(), [()] * len(self.titles), list(d["items"].get("raw_id", self.titles)),
                       users, splits)

    # ---- stage 1 -----------------------------------------------------------------------
    @cached_property
    def rankings(self) -> np.ndarray:
        """Dual-graph top-N per test line (item ids, -1 past a domain's size)."""
        return self.tensors("stage1_rankings.safetensors")["test_top"]

    def dual_graph_top(self, line: Line, n: int | None = None) -> list[int]:
        return [int(i) for i in self.rankings[line.index][:n] if i >= 0]

    def target_rank(self, ranking: list[int], line: Line) -> int | None:
        """1-based position of the target in a ranking, None when absent."""
        rank = rank_in_list(ranking, line.target)
        return int(rank) if rank != float("inf") else None

    @cached_property
    def vectors(self) -> dict[str, np.ndarray]:
        return self.tensors("stage1_vectors.safetensors")

    def curve(self, method: str) -> list[dict]:
        return self.json_file(f"{method}_curve.json", [])

    def lora_report(self) -> dict:
        return self.json_file("lora/training.json", {})

    def lora_adapter(self) -> Path | None:
        """The run's LoRA adapter folder (peft save_pretrained), its config and the header of
        its weights checked; None when the run has no adapter."""
        if not (self.dir / "lora" / "adapter_config.json").is_file():
            return None
        self.json_file("lora/adapter_config.json")
        tensor_shapes(self.dir / "lora" / "adapter_model.safetensors", self.label("lora/adapter_model.safetensors"))
        return self.dir / "lora"

    @cached_property
    def transitions(self) -> dict[int, dict[int, int]]:
        """item -> {next item: count} over the training lines' histories (the item graph's
        transition edges, both directions of domain)."""
        out: dict[int, dict[int, int]] = {}
        seen_users: set[int] = set()
        for u, _, _, h in self._data["lines"]["train"]:
            if u in seen_users:  # a user's lines share one sequence: count it once
                continue
            seen_users.add(u)
            for a, b in zip(h, h[1:]):
                out.setdefault(a, {}).setdefault(b, 0)
                out[a][b] += 1
        return out

    def item_neighbourhood(self, item: int, n: int = 10) -> list[tuple[int, int]]:
        """Items most often next after `item` in training sequences, with counts."""
        nxt = self.transitions.get(int(item), {})
        return sorted(nxt.items(), key=lambda kv: (-kv[1], self.titles[kv[0]]))[:n]

    # ---- retrieval ---------------------------------------------------------------------
    @cached_property
    def _indexes(self) -> dict[str, list]:
        from urllm.methods.retrieval import RetrievalConfig, UserIndex, build_domain_indexes

        domain = []
        for x in "AB":
            file = f"retrieval_{x}.faiss"
            self.json_file(f"{file}.json")  # the index's user ids and config, checked before faiss reads them
            if not (self.dir / file).is_file():
                raise RunError("file is missing", self.label(file))
            try:
                domain.append(UserIndex.load(self.dir / file))
            except (OSError, ValueError, TypeError, RuntimeError) as err:
                problem = relative_paths(err, self.dir.parent).removeprefix(f"{self.label(file)}: ")
                raise RunError(problem, self.label(file)) from None
        train_users = [u for u, _, _, _ in self._data["lines"]["train"]]
        mixed = build_domain_indexes(self.vectors["users_mixed_train"], train_users, RetrievalConfig(vector="mixed"))
        return {"domain": domain, "mixed": mixed}

    def neighbours(self, line: Line, k: int, vector: str = "domain") -> list[tuple[int, float]]:
        """(user index, inner-product score) of the k nearest training users, never the user.
        `vector`: "domain" (the run's index over Eq. 14 vectors) or "mixed" (the ablation)."""
        from urllm.methods.retrieval import nearest_users

        if k < 1:  # without reading the indexes
            return []
        return nearest_users(self._indexes[vector], self.vectors, "test", line.index, line.domain, line.user, k, vector)

    # ---- stage 2 -----------------------------------------------------------------------
    @cached_property
    def generations(self) -> dict:
        """generations.json (precomputed outputs of the evaluated lines), {} if the run has none."""
        return self.json_file("generations.json", {})

    @property
    def fusion_weight(self) -> float:
        """The LLM's weight in the pipeline's fusion, chosen on validation lines (0: none)."""
        return float(self.generations.get("fusion", {}).get("weight", 0.0))

    @property
    def main_k(self) -> int:
        """The neighbours in the run's prompts: the k of its headline LLM numbers
        (schema.main_k), from the ks it generated with (its config's before it did)."""
        llm, gens = self.config.get("llm", {}), self.generations
        return main_k(gens.get("k", llm.get("k")), gens.get("ks", llm.get("ks")))

    @property
    def max_neighbor_items(self) -> int:
        """How many of a neighbour's most recent items the run's prompts carry."""
        from urllm.llm.config import PromptConfig

        return int(self.config.get("llm", {}).get("prompt", {}).get("max_neighbor_items", PromptConfig.max_neighbor_items))

    def precomputed(self, line: Line, k: int | None = None) -> dict | None:
        """The stored record of a line for k neighbours (default: the run's main k, else
        the first stored); None when the line, or that k, was not generated for."""
        per_k = self.generations.get("records", {}).get(str(line.index))
        if not per_k:
            return None
        if k is not None:
            return per_k.get(str(k))
        return per_k.get(str(self.main_k)) or next(iter(per_k.values()))

    # ---- the sibling methods -----------------------------------------------------------
    @cached_property
    def rsllm(self) -> dict:
        """rsllm.json (RSLLM's metrics and per-line outputs on URLLM's test lines), {} if none."""
        return self.json_file("rsllm.json", {})

    def rsllm_record(self, line: Line) -> dict | None:
        return self.rsllm.get("records", {}).get(str(line.index))

    @cached_property
    def rerank(self) -> dict:
        """rerank.json ("urllm_rerank": the LLM's scores of the dual-graph top-N, fused), {} if none."""
        return self.json_file("rerank.json", {})

    def rerank_record(self, line: Line) -> dict | None:
        """A test line's candidates with their dual-graph and LLM scores and the fused list."""
        return self.rerank.get("records", {}).get(str(line.index))

    @cached_property
    def profiles(self) -> dict:
        """profiles.json (LLM4CDSR's hierarchical user profiles), {} if none."""
        return self.json_file("profiles.json", {})

    def profile(self, line: Line) -> dict | None:
        """The hierarchical profile of a test line's user ({items, clusters, text}), if profiled."""
        return self.profiles.get("test_lines", {}).get(str(line.index))

    @cached_property
    def _llm4cdsr_top(self) -> np.ndarray | None:
        path = self.dir / "llm4cdsr_rankings.safetensors"
        return self.tensors("llm4cdsr_rankings.safetensors")["test_top"] if path.is_file() else None

    def llm4cdsr_top(self, line: Line, n: int | None = None) -> list[int] | None:
        """LLM4CDSR's top-N for a test line; None when the run has no LLM4CDSR rankings."""
        top = self._llm4cdsr_top
        return None if top is None else [int(i) for i in top[line.index][:n] if i >= 0]

    # ---- projections -------------------------------------------------------------------
    @cached_property
    def projection_spaces(self) -> list[dict]:
        """The embedding spaces of projections.safetensors ({"name", "label", "kind": "items" |
        "users", "legacy"}), its header checked against projections.json; an older run's file
        (no JSON) as its two spaces, dual-graph items and test lines, without neighbours."""
        path, label = self.dir / "projections.safetensors", self.label("projections.safetensors")
        listing = self.json_file("projections.json", None)
        if listing is None:
            tensor_shapes(path, label, LEGACY_PROJECTIONS)
            return [{"name": "dual_graph_items", "label": "Dual-graph item table", "kind": "items", "legacy": True},
                    {"name": "users_domain", "label": "Users: domain-specific vectors (Eq. 14), test lines", "kind": "users",
                     "legacy": True}]
        expected = {}
        for space in listing["spaces"]:
            if space["kind"] not in ("items", "users"):
                raise RunError(f"space {space['name']!r} has kind {space['kind']!r}, expected items or users",
                               self.label("projections.json"))
            parts = PROJECTION_USER_TENSORS if space["kind"] == "users" else PROJECTION_TENSORS
            expected |= {f"{space['name']}.{part}": ndim for part, ndim in parts.items()}
        tensor_shapes(path, label, expected)
        return [space | {"legacy": False} for space in listing["spaces"]]

    @cached_property
    def _projection_tensors(self) -> dict[str, np.ndarray]:
        return self.tensors("projections.safetensors")

    def projection(self, name: str) -> dict[str, np.ndarray]:
        """One space's projected points, m of them: rows [m] (item ids, or users' indexes), xy
        [m, 2], domain [m] (-1: none), for users spaces line [m] (test line, -1: a training
        user), and unless the file is an older one nbrs [m, k] (positions among the m points,
        -1: none) and sims [m, k]; every index checked."""
        space = next(s for s in self.projection_spaces if s["name"] == name)
        t, label = self._projection_tensors, self.label("projections.safetensors")
        if not space["legacy"]:
            out = {part: t[f"{name}.{part}"] for part in (PROJECTION_USER_TENSORS if space["kind"] == "users" else PROJECTION_TENSORS)}
        elif space["kind"] == "items":
            out = {"rows": t["items_rows"], "xy": t["items_xy"], "domain": t["items_domain"]}
        else:
            lines = t["users_rows"]
            if lines.size and not 0 <= lines.min() <= lines.max() < len(self.test_lines):
                raise RunError("users_rows names a test line that does not exist", label)
            users = np.array([self.test_lines[i].user for i in lines], np.int64)
            out = {"rows": users, "xy": t["users_xy"], "domain": t["users_domain"], "line": lines}
        m, k = len(out["rows"]), out["nbrs"].shape[1] if "nbrs" in out else 0
        sizes = {"rows": len(self.titles) if space["kind"] == "items" else len(self.user_ids), "domain": 2,
                 "line": len(self.test_lines), "nbrs": m}
        for part, v in out.items():
            if v.shape[0] != m or (part == "xy" and v.shape[1] != 2) or (part in ("nbrs", "sims") and v.shape[1] != k):
                raise RunError(f"{name}.{part} has shape {list(v.shape)} for {m} points", label)
            low = 0 if part == "rows" else -1
            if part in sizes and v.size and (v.min() < low or v.max() >= sizes[part]):
                raise RunError(f"{name}.{part} holds an index outside [{low}, {sizes[part]})", label)
        return out

    @cached_property
    def item_popularity(self) -> np.ndarray:
        """item -> its occurrences in the training users' sequences (each training user's whole
        sequence once): the popularity the Embeddings colours and the Slices bins share."""
        users = sorted({u for u, _, _, _ in self._data["lines"]["train"]})
        seqs = [self.user_items(u) for u in users]
        flat = np.concatenate(seqs) if seqs else np.zeros(0, np.int64)
        return np.bincount(flat, minlength=len(self.titles)).astype(np.int64)

    # ---- per-line table ----------------------------------------------------------------
    def line_table(self):
        """One row per test line: who, what, each method's full rank of the target
        (line_ranks.json; an older run: the dual-graph top-N position and, on the lines with
        generations, each variant's) and each LLM variant's out-of-domain answer count."""
        import pandas as pd

        gens, rows, full = self.generations, [], self.line_ranks
        ranked = self.has("dual_graph")  # a run stopped after the data stage has no rankings yet
        for ln in self.test_lines:
            if full is not None:
                ranks = {m: None if np.isnan(r[ln.index]) else int(r[ln.index]) for m, r in full.items()}
                rank = ranks.get("dual_graph")
            else:
                ranks, rank = {}, self.target_rank(self.dual_graph_top(ln), ln) if ranked else None
            row = {"line": ln.index, "user": self.user_ids[ln.user], "domain": self.domains[ln.domain],
                   "history": len(ln.history), "cold_start": self.cold_start(ln), "target": self.titles[ln.target],
                   "dual_graph_rank": rank, "dual_graph_hit@10": rank is not None and rank <= 10}
            row |= {f"{m}_rank": r for m, r in ranks.items()}
            rec = self.precomputed(ln) if gens else None
            row["evaluated"] = rec is not None
            for variant, g in (rec or {}).get("variants", {}).items():
                if full is None:
                    row[f"{variant}_rank"] = self.target_rank(g["ranking"], ln)
                row[f"{variant}_ood"] = sum(o["valid"] and not o["in_domain"] for o in g["outputs"])
            rsllm = self.rsllm_record(ln)
            if rsllm is not None and full is None:
                row["rsllm_rank"] = self.target_rank(rsllm["ranking"], ln)
            # out-of-domain case: a free-text answer named, or was grounded to, an item of the other domain
            row["ood_case"] = bool(row.get("free_ood") or row.get("refined_ood"))
            rows.append(row)
        return pd.DataFrame(rows)


def _check_indexes(data: dict, label: str) -> None:
    """data.json's numbers point where they should: every item has a title and a domain,
    every user and test line names existing users, domains and items."""
    items = data["items"]
    n_items, n_users = len(items["title"]), len(data["users"])

    def outside(values, n: int) -> bool:
        a = np.fromiter(values, np.int64)
        return bool(a.size) and bool((a < 0).any() or (a >= n).any())

    if len(items["domain"]) != n_items:
        raise RunError(f"items.domain has {len(items['domain'])} entries for {n_items} titles", label)
    if outside(items["domain"], 2):
        raise RunError("items.domain expected domain indexes 0 and 1", label)
    if outside(chain.from_iterable(u["items"] for u in data["users"]), n_items):
        raise RunError("users: an item index is outside items.title", label)
    for split, lines in data["lines"].items():
        if (outside((row[0] for row in lines), n_users) or outside((row[1] for row in lines), 2)
                or outside(chain((row[2] for row in lines), chain.from_iterable(row[3] for row in lines)), n_items)):
            raise RunError(f"lines.{split}: a line names a user, domain or item that does not exist", label)


def group_by_line_count(metrics: dict, total: int | None = None) -> list[MetricTable]:
    """An older run's manifest metrics, one table per line count n (most lines first): its
    methods were scored on different lines, and numbers of different line sets are never
    set side by side."""
    groups: dict = {}
    for method, values in metrics.items():
        n = (values.get("overall") or {}).get("n") if isinstance(values, dict) else None
        groups.setdefault(n, {})[method] = values
    of = "" if total is None else f" of the run's {total}"
    return [MetricTable(g, n, f"Scored on {n}{of} test lines.", legacy=True)
            for n, g in sorted(groups.items(), key=lambda kv: -(kv[0] or 0))]


def filter_lines(table, cold: bool = False, hit: str = "all", ood: bool = False, evaluated: bool = False,
                 domains: list[str] | None = None):
    """The rows of a line_table() that pass the app's filters (sidebar and Evaluation page);
    defined with the slices in urllm/app/slices.py, so a filter and its slice agree."""
    from urllm.app.slices import filter_lines as by_slices  # slices.py imports this module

    return by_slices(table, cold, hit, ood, evaluated, domains)
