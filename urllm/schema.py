"""The shape of every run file the app reads, written down once, and the one checker that
holds a file to it, and the names the writer and the reader share (methods, variants,
stages, the run's main k). urllm/app/reader.py checks each file as it reads it, so the pages may index
what they read: a file of the right JSON type but the wrong shape is a message naming the
file and the place (RunError), never an exception deep in a page. Only what the app reads
is described; other keys are allowed. No torch, no streamlit.

A shape is one of
    str, int, float, bool, None      a JSON string, integer, number (an integer too), boolean, null
    ANY, dict, list                  anything, any object, any list
    {"key": s, "opt?": s, "*": s}    an object with these keys ("?": may be absent; "*": every other key)
    List(s)                          a list, each element s
    Row(s1, s2, ...)                 a list of exactly these elements
    Map(s, int_keys=False)           an object of any keys (integer strings with int_keys), each value s
    Either(s1, s2, ...)              any one of these

    check(value, shape)              # ShapeError("stages[0] has no 'name' field") when it does not fit
"""
from __future__ import annotations

import json
import re

# Names shared by the pipeline (writer) and the app (reader), in display order.
# stage-1 methods: baselines (pop, itemknn, sasrec), the dual-graph model, its two ablations, LLM4CDSR
STAGE1_METHODS = ("pop", "itemknn", "sasrec", "dual_graph", "dual_graph_no_graph", "dual_graph_readout_only", "llm4cdsr")
VARIANTS = ("free", "constrained", "candidates", "refined")  # URLLM's LLM outputs, searched per line
# "urllm": the fused pipeline; "urllm_rerank": the LLM re-scores the dual-graph top-N
LLM_METHODS = tuple(f"urllm_{v}" for v in VARIANTS) + ("urllm", "urllm_rerank", "rsllm")
RECORD_VARIANTS = VARIANTS + ("pipeline",)  # a generations.json record's lists: "pipeline" is method "urllm"'s
METHODS = STAGE1_METHODS + LLM_METHODS
# a run's stages in the order they run
STAGES = ("data", "pop", "itemknn", "sasrec", "dual_graph", "dual_graph_no_graph", "dual_graph_readout_only", "profiles",
          "llm4cdsr", "retrieval", "lora", "generation", "rerank", "rsllm", "evaluation", "projections")
DEFAULT_K = 1  # neighbours in prompts when a run names none (LLMConfig.k's default)


def main_k(k, ks) -> int:
    """The k a run's headline LLM numbers use: its configured k when it was generated with
    it, else the first k it was generated with (DEFAULT_K when it names neither)."""
    ks = [int(x) for x in ks or []]
    if k is not None and int(k) in ks or not ks:
        return int(k) if k is not None else DEFAULT_K
    return ks[0]


ANY = object()


class ShapeError(ValueError):
    """Where a value leaves its shape: "<json path> expected <what>, got <what>"."""


class List:
    def __init__(self, item, name: str = "a list"):
        self.item, self.name = item, name
        self.plain = _plain_types(item)  # a list of numbers is checked in one pass


class Row:
    def __init__(self, *items):
        self.items = items


class Map:
    def __init__(self, value, int_keys: bool = False):
        self.value, self.int_keys = value, int_keys


class Either:
    def __init__(self, *options):
        self.options = options
        found = [_plain_types(o) for o in options]
        self.plain = None if None in found else tuple(t for ts in found for t in ts)


# ---- the checker ------------------------------------------------------------------------
_TYPES = {str: (str,), int: (int,), float: (int, float), bool: (bool,), None: (type(None),), dict: (dict,),
          list: (list,)}  # type(v) in these: a JSON boolean is no integer here
_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean", None: "null", dict: "an object",
          list: "a list"}
_IDENTIFIER = re.compile(r"[A-Za-z0-9_@-]+")
_INT_KEY = re.compile(r"-?[0-9]+")


def describe(shape) -> str:
    if shape is ANY:
        return "anything"
    if isinstance(shape, Either):
        return " or ".join(describe(o) for o in shape.options)
    if isinstance(shape, List):
        return shape.name
    if isinstance(shape, Row):
        return f"a list of {len(shape.items)} items"
    if isinstance(shape, (dict, Map)):
        return "an object"
    return _NAMES[shape]


def _got(value, length: bool = False) -> str:
    if type(value) is list and length:
        return f"a list of {len(value)} items"
    return next((_NAMES[t] for t in (bool, int, float, str, None, dict, list) if type(value) in _TYPES[t]),
                type(value).__name__)


def _render(path: list) -> str:
    """["stages", 0, "files"] -> "stages[0].files"."""
    out = ""
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        elif _IDENTIFIER.fullmatch(step):
            out += f".{step}" if out else step
        else:
            out += f"[{json.dumps(step)[:60]}]"
    return out


def _fail(path: list, what: str) -> ShapeError:
    where = _render(path)
    return ShapeError(f"{where} {what}" if where else what)


def _mismatch(path: list, shape, value) -> ShapeError:
    return _fail(path, f"expected {describe(shape)}, got {_got(value, length=isinstance(shape, Row))}")


def _plain_types(shape) -> tuple | None:
    """The Python types a primitive shape (or an Either of primitives) admits; None otherwise."""
    if isinstance(shape, Either):
        return shape.plain
    return _TYPES.get(shape) if not isinstance(shape, (dict, List, Row, Map)) and shape is not ANY else None


_FIELDS: dict[int, tuple[dict, list]] = {}  # id(spec) -> (spec, its fields): parsed once, the spec kept alive


def _fields(spec: dict) -> list[tuple[str, bool, object]]:
    """[(key, optional, shape)] of an object spec, "*" left out."""
    if id(spec) not in _FIELDS:
        _FIELDS[id(spec)] = spec, [(key.rstrip("?"), key.endswith("?"), sub) for key, sub in spec.items() if key != "*"]
    return _FIELDS[id(spec)][1]


def check(value, shape) -> None:
    """Raise ShapeError at the first place where `value` leaves `shape`."""
    _check(value, shape, [])


def _check(value, shape, path: list) -> None:
    # `path` is the list of keys down to `value`, made into text only for a message
    kind = type(shape)
    if kind is dict:
        if type(value) is not dict:
            raise _mismatch(path, shape, value)
        for key, optional, sub in _fields(shape):
            if key in value:
                path.append(key)
                _check(value[key], sub, path)
                path.pop()
            elif not optional:
                raise _fail(path, f"has no {key!r} field") if path else ShapeError(f"no {key!r} field")
        if "*" in shape:
            named = {key for key, _, _ in _fields(shape)}
            for key, v in value.items():
                if key not in named:
                    path.append(key)
                    _check(v, shape["*"], path)
                    path.pop()
    elif kind is List or kind is Row:
        if type(value) is not list or (kind is Row and len(value) != len(shape.items)):
            raise _mismatch(path, shape, value)
        if kind is List and shape.plain is not None and all(type(v) in shape.plain for v in value):
            return  # long lists of numbers: one pass
        for i, v in enumerate(value):
            path.append(i)
            _check(v, shape.item if kind is List else shape.items[i], path)
            path.pop()
    elif kind is Map:
        if type(value) is not dict:
            raise _mismatch(path, shape, value)
        for key, v in value.items():
            if shape.int_keys and not _INT_KEY.fullmatch(key):
                raise _fail(path, f"key {json.dumps(key)[:60]} expected an integer")
            path.append(key)
            _check(v, shape.value, path)
            path.pop()
    elif kind is Either:
        if shape.plain is not None:
            if type(value) not in shape.plain:
                raise _mismatch(path, shape, value)
            return
        for option in shape.options:  # the option of the value's own kind says best what is wrong inside
            container = list if isinstance(option, (List, Row)) else dict if isinstance(option, (dict, Map)) else None
            if container is not None and type(value) is container:
                return _check(value, option, path)
            if container is None and (option is ANY or type(value) in _TYPES[option]):
                return
        raise _mismatch(path, shape, value)
    elif shape is not ANY and type(value) not in _TYPES[shape]:
        raise _mismatch(path, shape, value)


# ---- the run files ----------------------------------------------------------------------
NUMBER_OR_NULL = Either(float, None)
INTERVAL = Either(None, Row(float, float))  # [lo, hi]
SCOPE = {  # one method's metrics on "overall" or a domain
    "n?": Either(int, None),
    "ci95?": Map(INTERVAL),
    "vs_dual_graph?": Map({"delta?": NUMBER_OR_NULL, "p?": NUMBER_OR_NULL, "ci95?": INTERVAL}),
    "*": NUMBER_OR_NULL,  # HR@10, MRR, ood_rate, ...
}
METHOD_METRICS = {"overall?": SCOPE, "n_test_lines?": int, "lines?": {"n?": int, "of?": int, "set?": str}, "*": SCOPE}
METRICS = Map(METHOD_METRICS)  # method -> its metrics

DESCRIBE = {  # the dataset in figures (manifest dataset.describe)
    "spec?": str, "domains": Row(str, str), "n_users": int, "n_items": Map(int), "n_interactions": int,
    "users_in_both_domains?": int, "sequence_length": Map(NUMBER_OR_NULL), "splits": Map(int), "split_users": Map(int),
    "targets_per_domain": Map(Map(int)),
}
MANIFEST = {
    "schema_version": ANY,
    "complete?": bool,
    "created_at?": Either(str, None),
    "git_commit?": Either(str, None),
    "config": {
        "seed?": int, "profile?": Either(str, None),
        "llm?": {"base_model?": str, "k?": int, "ks?": List(int),
                 "prompt?": {"max_tokens?": int, "max_history?": int, "max_neighbor_items?": int},
                 "generation?": {"num_beams?": int, "max_new_tokens?": int, "top_k?": int}},
    },
    "dataset": {"spec?": str, "describe?": DESCRIBE},
    "stages": List({"name": str, "key": str, "seconds": float, "files": List({"path": str}),
                    "summary?": Either(None, {"best_epoch?": Either(int, None), "*": ANY})}),
    "metrics?": Either(None, METRICS),
}

LINE = Row(int, int, int, List(int))  # user, target domain, target item, history
DATA = {
    "domains": Row(str, str),
    "items": {"title": List(str), "domain": List(int), "raw_id?": List(str)},
    "users": List({"id": str, "items": List(int)}),
    "lines": {"train": List(LINE), "valid?": List(LINE), "test": List(LINE)},
}

RANKS = List(NUMBER_OR_NULL, name="a list of numbers and nulls")
LINE_RANKS = {"methods": Map(RANKS)}  # method -> the target's full rank on every test line

OUTPUT = {"text": str, "item": Either(int, None), "valid": bool, "in_domain": bool, "duplicate": bool}
ANSWERS = {"ranking": List(int), "fell_back?": bool, "outputs": List(OUTPUT)}  # one LLM method on one line
GENERATIONS = {
    "lines?": List(int), "k?": int, "ks?": List(int),
    "metrics?": Map(METRICS, int_keys=True),  # k -> metrics
    "fusion?": {"weight?": float},
    "records?": Map(Map({"prompt": Map(str), "tokens": Map(int), "variants": Map(ANSWERS)}, int_keys=True),
                    int_keys=True),  # test line -> k -> record
}
RSLLM = {"records?": Map(ANSWERS | {"soft_tokens?": int}, int_keys=True)}
NUMBERS = List(float, name="a list of numbers")
RERANK = {"weight": float, "k?": int, "candidates?": int, "calibrate?": bool,  # rerank.json ("urllm_rerank")
          "records?": Map({"candidates": List(int), "dual": NUMBERS, "llm": NUMBERS, "raw?": NUMBERS,
                           "ranking": List(int)}, int_keys=True)}
PROFILE = {"text": str, "clusters": List({"summary": str, "items": List(int)})}
PROFILES = {"test_lines?": Map(PROFILE, int_keys=True)}
CURVE = List({"epoch": float, "seconds": float})
LORA_REPORT = {"curve": List({"step": float, "loss?": NUMBER_OR_NULL}), "seconds?": float, "tokens_per_s?": float,
               "config?": {"target_modules?": List(str)}}
USER_INDEX = {"config": dict, "sha256": str, "user_ids": List(int)}  # retrieval_X.faiss.json
# projections.json: the embedding spaces in projections.safetensors (urllm/pipeline/projections.py);
# "points": the space's points before sampling, "k": neighbours per point
PROJECTIONS = {"k": int, "spaces": List({"name": str, "label": str, "kind": str, "points": int, "dim?": int})}
# projections.safetensors holds per space "<name>.<tensor>" (number of dimensions): rows (item id, or the
# user index of a users point), xy, domain (-1: none), nbrs (positions among the space's points, -1: none),
# sims (their cosines); a users space also "line" (the test line, -1: a training user)
PROJECTION_TENSORS = {"rows": 1, "xy": 2, "domain": 1, "nbrs": 2, "sims": 2}
PROJECTION_USER_TENSORS = PROJECTION_TENSORS | {"line": 1}
# an older run's projections.safetensors (no projections.json): dual-graph items and test lines only
LEGACY_PROJECTIONS = {f"{kind}_{part}": ndim for kind in ("items", "users") for part, ndim in (("rows", 1), ("xy", 2), ("domain", 1))}

CURVE_METHODS = ("sasrec", "dual_graph", "dual_graph_no_graph", "llm4cdsr")  # the models that log a curve
# run file (relative to the run folder) -> shape; manifest.json is checked on open
JSON_FILES = {
    "data.json": DATA,
    "line_ranks.json": LINE_RANKS,
    "evaluation.json": METRICS,
    "generations.json": GENERATIONS,
    "rsllm.json": RSLLM,
    "rerank.json": RERANK,
    "profiles.json": PROFILES,
    "lora/training.json": LORA_REPORT,
    "lora/adapter_config.json": dict,
    "retrieval_A.faiss.json": USER_INDEX,
    "retrieval_B.faiss.json": USER_INDEX,
    "projections.json": PROJECTIONS,
    **{f"{m}_curve.json": CURVE for m in CURVE_METHODS},
}
# safetensors file -> {tensor the app reads: its number of dimensions}
TENSOR_FILES = {
    "stage1_rankings.safetensors": {"test_top": 2},
    "stage1_vectors.safetensors": {"users_test": 3, "users_mixed_test": 2, "users_mixed_train": 2},
    "llm4cdsr_rankings.safetensors": {"test_top": 2},
    "projections.safetensors": {},  # its tensors depend on projections.json: the reader checks them
    "lora/adapter_model.safetensors": {},  # read by peft; a readable header is checked here
}
