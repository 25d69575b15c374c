"""Loader for `synthetic`: a tiny seeded dataset for tests and the `tiny` profile.

Each user has one latent taste (a topic) shared by both domains; each item belongs to one
topic, and its title carries the topic's word. A user picks on-topic items with
probability `p_on_topic`, so a user's items in one domain predict their next item in the
other: the cross-domain signal every model should find.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from urllm.data.checks import MAX_SEED, check_float, check_int, check_split_fractions
from urllm.data.dataset import Dataset, User
from urllm.data.errors import DataError
from urllm.data.splits import user_disjoint_splits

TOPICS = ["crimson", "azure", "golden", "jade", "ivory", "onyx", "amber", "coral", "silver", "violet"]
NOUNS = (
    ["brush", "canvas", "easel", "palette", "yarn", "needle", "frame", "clay"],  # domain A: art
    ["stapler", "binder", "pen", "folder", "desk", "marker", "ledger", "clip"],  # domain B: office
)


@dataclass
class SyntheticConfig:
    """Options of `synthetic?key=value`."""

    n_users: int = 120  # users before the split
    items_per_domain: int = 40  # items in each domain
    n_topics: int = 4  # latent tastes (at most 10)
    min_len: int = 6  # shortest user sequence
    max_len: int = 16  # longest user sequence
    p_on_topic: float = 0.85  # chance that a user's next item matches their taste
    valid_frac: float = 0.15
    test_frac: float = 0.2
    seed: int = 0

    def validate(self) -> None:
        """Every option in range (DataError naming the field); called by parse_spec."""
        check_int("n_users", self.n_users, 1, 1_000_000)
        check_int("n_topics", self.n_topics, 1, len(TOPICS))
        check_int("items_per_domain", self.items_per_domain, self.n_topics, 100_000, "at least one item per topic")
        check_int("min_len", self.min_len, 4, 10_000, "room for a history and a target in each domain")
        check_int("max_len", self.max_len, self.min_len, 10_000, "at least min_len")
        check_float("p_on_topic", self.p_on_topic, 0.0, 1.0)
        check_split_fractions(self.valid_frac, self.test_frac)
        check_int("seed", self.seed, 0, MAX_SEED)


def check_arg(arg: str, spec: str) -> None:
    if arg:
        raise DataError(f"{spec!r}: synthetic takes no path; options go after '?', e.g. synthetic?n_users=50")


def load_synthetic(arg: str, cfg: SyntheticConfig, spec: str) -> Dataset:
    rng = np.random.default_rng(cfg.seed)
    titles, domain, attrs, topic_of = [], [], [], []
    for d in (0, 1):
        for k in range(cfg.items_per_domain):
            topic = k % cfg.n_topics
            noun = NOUNS[d][(k // cfg.n_topics) % len(NOUNS[d])]
            titles.append(f"{TOPICS[topic]} {noun} {k}")
            domain.append(d)
            attrs.append((TOPICS[topic], noun))
            topic_of.append(topic)
    domain_arr, topic_arr = np.array(domain, dtype=np.int8), np.array(topic_of)
    pools = {(d, t): np.flatnonzero((domain_arr == d) & (topic_arr == t)) for d in (0, 1) for t in range(cfg.n_topics)}
    users = []
    for u in range(cfg.n_users):
        taste = rng.integers(cfg.n_topics)
        length = int(rng.integers(cfg.min_len, cfg.max_len + 1))
        doms = rng.integers(0, 2, size=length)
        doms[:2] = [0, 1]  # both domains present
        rng.shuffle(doms)
        seq = []
        for d in doms:
            topic = taste if rng.random() < cfg.p_on_topic else rng.integers(cfg.n_topics)
            seq.append(int(rng.choice(pools[(int(d), int(topic))])))
        times = np.cumsum(rng.integers(1, 100, size=length)).astype(np.int64)
        users.append(User(f"u{u}", np.array(seq, dtype=np.int64), times))
    splits = user_disjoint_splits(users, domain_arr, cfg.valid_frac, cfg.test_frac, cfg.seed, "synthetic")
    return Dataset(spec, ("art", "office"), titles, domain_arr, attrs, list(titles), users, splits)
