"""The `synthetic` source: seeded, sized by its config, with a cross-domain signal."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from urllm.data import SPLITS, DataError, load_dataset
from urllm.data.synthetic import SyntheticConfig


def fingerprint(ds):
    return (
        ds.item_titles,
        [(u.raw_id, u.items.tolist(), u.times.tolist()) for u in ds.users],
        {s: [(ex.user, ex.domain, ex.target, ex.history.tolist()) for ex in ds.splits[s]] for s in SPLITS},
    )


def test_deterministic_for_a_seed():
    assert fingerprint(load_dataset("synthetic")) == fingerprint(load_dataset("synthetic?seed=0"))
    assert fingerprint(load_dataset("synthetic?seed=7")) == fingerprint(load_dataset("synthetic?seed=7"))


def test_another_seed_differs():
    a, b = load_dataset("synthetic?seed=0"), load_dataset("synthetic?seed=1")
    assert [u.items.tolist() for u in a.users] != [u.items.tolist() for u in b.users]
    assert [sorted(a.split_users(s)) for s in SPLITS] != [sorted(b.split_users(s)) for s in SPLITS]


@pytest.mark.parametrize(
    "options", ["", "n_users=50&items_per_domain=12&n_topics=3&min_len=4&max_len=5", "n_users=300&valid_frac=0.1&test_frac=0.3"]
)
def test_counts_match_config(options):
    ds = load_dataset(f"synthetic?{options}")
    cfg = SyntheticConfig(**{k: type(getattr(SyntheticConfig, k))(v) for k, v in (p.split("=") for p in options.split("&") if p)})
    assert ds.domains == ("art", "office")
    assert len(ds.users) == cfg.n_users
    assert len(ds.items_of(0)) == len(ds.items_of(1)) == cfg.items_per_domain
    assert ds.n_items == 2 * cfg.items_per_domain
    for u in ds.users:
        assert cfg.min_len <= len(u.items) <= cfg.max_len
        assert set(ds.item_domain[u.items].tolist()) == {0, 1}  # both domains present
        assert np.all(np.diff(u.times) > 0)
    users = [ds.split_users(s) for s in SPLITS]
    assert len(users[2]) == round(cfg.n_users * cfg.test_frac)
    assert len(users[1]) == round(cfg.n_users * cfg.valid_frac)
    assert len(users[0]) == cfg.n_users - len(users[1]) - len(users[2])
    assert not users[0] & users[1] and not users[0] & users[2] and not users[1] & users[2]
    topics = {a[0] for a in ds.item_attributes}
    assert len(topics) == cfg.n_topics
    ds.validate()


def test_examples_are_leave_one_out():
    ds = load_dataset("synthetic")
    for s in SPLITS:
        for ex in ds.splits[s]:
            u = ds.users[ex.user]
            t = np.flatnonzero(ds.item_domain[u.items] == ex.domain)[-1]
            assert ex.target == u.items[t] and ex.history.tolist() == u.items[:t].tolist()
            assert len(ex.history) > 0


def cross_domain_hit_rate(ds) -> tuple[float, int]:
    """Share of domain-B test targets whose topic is the majority topic of the user's
    domain-A history (topic = first attribute word)."""
    hits = total = 0
    for ex in ds.splits["test"]:
        if ex.domain != 1:
            continue
        a_items = [i for i in ex.history.tolist() if ds.item_domain[i] == 0]
        if not a_items:
            continue
        majority = Counter(ds.item_attributes[i][0] for i in a_items).most_common(1)[0][0]
        hits += majority == ds.item_attributes[ex.target][0]
        total += 1
    return hits / total, total


def test_cross_domain_signal():
    ds = load_dataset("synthetic")
    n_topics = SyntheticConfig().n_topics
    rate, total = cross_domain_hit_rate(ds)
    assert total >= 15
    assert rate > 0.5 > 1 / n_topics
    # and it comes from the shared taste: with on-topic picks at chance level it vanishes
    noise = load_dataset("synthetic?p_on_topic=0&n_users=600")
    assert cross_domain_hit_rate(noise)[0] < 0.4


@pytest.mark.parametrize(
    "options, message",
    [("n_topics=11", "n_topics=11"), ("n_topics=0", "n_topics=0"), ("items_per_domain=2", "items_per_domain"),
     ("min_len=3", "min_len"), ("min_len=9&max_len=8", "min_len"), ("valid_frac=0.5&test_frac=0.5", "< 1")],
)
def test_bad_config(options, message):
    with pytest.raises(DataError, match=message):
        load_dataset(f"synthetic?{options}")
    with pytest.raises(DataError, match="takes no path"):
        load_dataset("synthetic:somewhere")
