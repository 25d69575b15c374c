"""`parse_spec` refuses every bad dataset option and folder without reading data: numbers
finite and in range, names well formed, the folder there. Each refusal is one DataError
line naming the field, the value and what was expected; nothing else ever escapes."""
from __future__ import annotations

import pytest
from data_fixtures import refused_by, write_urllm_release
from hypothesis import given, settings
from hypothesis import strategies as st

from urllm.data import DataError, load_dataset, parse_spec


def refused(spec: str, *parts: str) -> str:
    return refused_by(parse_spec, spec, *parts, max_length=600)


# spec -> what the message must name: the field=value and the expected range
BAD_OPTIONS = {
    "synthetic?n_users=0": ["n_users=0", "1..1,000,000"],
    "synthetic?n_users=-5": ["n_users=-5", "1..1,000,000"],
    "synthetic?n_users=5000000000": ["n_users=5000000000", "1..1,000,000"],
    "synthetic?n_topics=11": ["n_topics=11", "1..10"],
    "synthetic?items_per_domain=2": ["items_per_domain=2", "4..100,000", "one item per topic"],
    "synthetic?min_len=3": ["min_len=3", "4..10,000"],
    "synthetic?min_len=9&max_len=8": ["max_len=8", "9..10,000"],
    "synthetic?p_on_topic=nan": ["p_on_topic=nan", "[0, 1]"],
    "synthetic?p_on_topic=inf": ["p_on_topic=inf", "[0, 1]"],
    "synthetic?p_on_topic=1.5": ["p_on_topic=1.5", "[0, 1]"],
    "synthetic?valid_frac=nan": ["valid_frac=nan", "[0, 1)"],
    "synthetic?test_frac=-0.1": ["test_frac=-0.1", "[0, 1)"],
    "synthetic?valid_frac=0.5&test_frac=0.5": ["valid_frac + test_frac = 1", "< 1"],
    "synthetic?seed=-1": ["seed=-1", "0..4,294,967,295"],
    "movielens?max_users=-5": ["max_users=-5", "0..1,000,000,000"],
    "movielens?min_per_domain=-1": ["min_per_domain=-1", "0..1,000,000,000"],
    "movielens?min_rating=nan": ["min_rating=nan", "a finite number"],
    "movielens?min_rating=-inf": ["min_rating=-inf", "a finite number"],
    "movielens?test_frac=1": ["test_frac=1.0", "[0, 1)"],
    "movielens?names=thrill": ["names='thrill'", "two domain names"],
    "movielens?names=a,a": ["names='a,a'", "distinct"],
    "movielens?names=a/b,c": ["names='a/b,c'", "no '/'"],
    "movielens?a_genres=": ["a_genres=''", "genres"],
    "movielens?seed=4294967296": ["seed=4294967296", "0..4,294,967,295"],
    "urllm:.?domains=art": ["domains='art'", "two names"],
    "urllm:.?domains=art,art": ["domains='art,art'", "distinct"],
    "urllm:.?domains=../art,office": ["domains='../art,office'", "no '/'"],
    "amazon:.:A,B?k_core=0": ["k_core=0", "1..1,000,000,000"],
    "amazon:.:A,B?k_core=-3": ["k_core=-3", "1..1,000,000,000"],
    "amazon:.:A,B?min_per_domain=-1": ["min_per_domain=-1", "0..1,000,000,000"],
    "amazon:.:A,B?test_frac=inf": ["test_frac=inf", "[0, 1)"],
    "amazon:.:A,B?seed=99999999999": ["seed=99999999999", "0..4,294,967,295"],
    "amazon:.:A,../B": ["categories='A,../B'", "no '/'"],
    "synthetic?n_users=5&n_users=6": ["'n_users' given twice"],
    "movielens?max_users=1e3": ["max_users='1e3'", "int"],
}


@pytest.mark.parametrize("spec", list(BAD_OPTIONS))
def test_bad_option_refused_at_parse(spec):
    refused(spec, *BAD_OPTIONS[spec])


def test_good_options_parse():
    _, _, cfg = parse_spec("synthetic?n_users=1&p_on_topic=0")
    assert (cfg.n_users, cfg.p_on_topic) == (1, 0.0)
    _, _, cfg = parse_spec("movielens?max_users=0&min_rating=-2.5&names=x,y&seed=4294967295")
    assert (cfg.max_users, cfg.min_rating, cfg.names, cfg.seed) == (0, -2.5, "x,y", 4294967295)
    _, _, cfg = parse_spec("amazon:.:A,B?k_core=1&min_per_domain=0&valid_frac=0&test_frac=0.99")
    assert (cfg.k_core, cfg.min_per_domain, cfg.test_frac) == (1, 0, 0.99)


def test_bad_option_refused_before_loading(urllm_release):
    """The same check stops load_dataset before it reads a file."""
    (urllm_release / "train.txt").unlink()  # a load would fail on this instead
    refused(f"urllm:{urllm_release}?domains=art", "domains='art'")
    with pytest.raises(DataError, match="n_users=0"):
        load_dataset("synthetic?n_users=0")


# ---------------------------------------------------------------- folders, without reading them


def test_folder_is_checked_not_read(tmp_path):
    assert parse_spec(f"urllm:{tmp_path}")[1] == str(tmp_path)  # an empty folder parses ...
    with pytest.raises(DataError, match="items_"):
        load_dataset(f"urllm:{tmp_path}")  # ... and only the load finds it has no release


@pytest.mark.parametrize("source", ["urllm:{}", "amazon:{}:A,B", "movielens?root={}"])
def test_missing_folder(tmp_path, source):
    refused(source.format(tmp_path / "nowhere"), "nowhere: not a directory (nothing exists there)", "expected")


@pytest.mark.parametrize("source", ["urllm:{}", "amazon:{}:A,B", "movielens?root={}"])
def test_file_instead_of_folder(tmp_path, source):
    (tmp_path / "data.txt").write_text("x")
    refused(source.format(tmp_path / "data.txt"), "data.txt: not a directory (it is a file)")


def test_no_folder_given():
    refused("urllm", "no folder given", "urllm:../shared/data/amazon-art-office")
    refused("urllm:?domains=a,b", "no folder given")


@pytest.mark.parametrize("path", ["x" * 300, "/tmp/" + "deep/" * 1000, "a\nb\tc"])
def test_unusable_path_is_one_line(path):
    message = refused(f"urllm:{path}", "not a directory")
    if len(path) > 255:
        assert "File name too long" in message and "characters)" in message  # shortened, with its length


def test_component_too_long_inside_a_real_folder(tmp_path):
    refused(f"urllm:{tmp_path / ('y' * 300)}", "File name too long")


def test_path_option_too_long_for_a_file_name(urllm_release):
    """A domain name passes parse_spec but makes a file name the system refuses."""
    with pytest.raises(DataError) as info:
        load_dataset(f"urllm:{urllm_release}?domains=art,{'o' * 300}")
    assert "File name too long" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("source", ["movielens:{}", "synthetic:{}"])
def test_sources_without_a_path(tmp_path, source):
    refused(source.format(tmp_path), "takes no path")


def test_real_folder_parses(tmp_path):
    root = write_urllm_release(tmp_path / "release")
    source, arg, cfg = parse_spec(f"urllm:{root}?domains=office,art")
    assert (source, arg, cfg.domains) == ("urllm", str(root), "office,art")


# ---------------------------------------------------------------- nothing but DataError


@settings(max_examples=300, deadline=None)
@given(
    source=st.sampled_from(["movielens", "urllm", "amazon", "synthetic", "nosuch", ""]),
    arg=st.text(max_size=40),
    options=st.lists(
        st.tuples(
            st.sampled_from(["n_users", "p_on_topic", "seed", "k_core", "domains", "names", "max_users", "root",
                             "valid_frac", "skip_unknown", "min_rating", "bogus"]),
            st.one_of(st.text(max_size=12), st.sampled_from(["nan", "inf", "-1", "0", "1e400", "9" * 5000, "1.5"])),
        ),
        max_size=3,
    ),
)
def test_parse_spec_raises_only_data_error(source, arg, options):
    spec = source + (f":{arg}" if arg else "") + ("?" + "&".join(f"{k}={v}" for k, v in options) if options else "")
    try:
        parse_spec(spec)
    except DataError as err:
        assert "\n" not in str(err)


def test_spec_that_is_not_a_string():
    with pytest.raises(DataError, match="expected a string"):
        parse_spec(None)
