"""Values from a URL or a run file (user ids, item titles, generated texts, config values,
error messages) shown literally: a URL or a run file must not put a link, an image or any
formatting into the app's pages. Streamlit renders markdown in st.markdown, captions,
alerts, titles and in widget, tab, expander and metric labels; plotly renders a subset of
HTML (<a href>, <b>, <br>, ...) in titles, legends, tick and hover texts. No streamlit here.

    st.warning(f"User {inline_code(user)} is not in run {inline_code(name)}")
    st.markdown(f"held-out *{escape_markdown(title)}*")
    go.Scatter(hovertext=[escape_plotly(title)], ...)
"""
from __future__ import annotations

import html
import re

LIMIT = 200  # characters of a name, title or value; longer ones are cut with an ellipsis
TEXT_LIMIT = 1000  # characters of a free text (an LLM's answer or summary)

# Every ASCII punctuation character markdown, GitHub's extensions or Streamlit give a
# meaning to: links and images ([]()!), raw HTML and autolinks (<>), entities (&),
# emphasis, code, headings, lists, tables, LaTeX ($) and Streamlit's :color[...] and
# :emoji: (:). A backslash makes each one plain text.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|~$:&])")
# Bare URLs and e-mail addresses are linked after parsing, in the text itself (GitHub's
# autolink literals), so backslashes do not stop them: an invisible word joiner does,
# put inside "://", "www." and before "@".
_WORD_JOINER = "\u2060"
_AUTOLINK = re.compile(r"(?<=:)(?=//)|(?<=www)(?=\.)|(?=@)", re.IGNORECASE)
# An absolute POSIX path (not the path part of a URL): /a/b, /a/b.json
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~-])/(?:[\w.+@~-]+/)*[\w.+@~-]+/?")


def cut(value, limit: int | None = LIMIT) -> str:
    """str(value) on one line, at most `limit` characters (the last one an ellipsis)."""
    text = " ".join(str(value).splitlines())
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def escape_markdown(value, limit: int | None = LIMIT) -> str:
    """`value` as markdown that displays exactly its text (cut to `limit`): every special
    character escaped, bare URLs and addresses broken by an invisible word joiner."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", _AUTOLINK.sub(_WORD_JOINER, cut(value, limit)))


def inline_code(value, limit: int | None = LIMIT) -> str:
    """`value` as a markdown code span: shown verbatim in monospace. A backtick would close
    the span and is shown as ', a line break as ⏎."""
    text = str(value).replace("`", "'").replace("\r\n", "\n").replace("\n", " ⏎ ")
    return f"`{cut(text, limit) or ' '}`"


def escape_plotly(value, limit: int | None = None) -> str:
    """`value` for a plotly text (title, legend, tick, hover): its HTML tags shown as text."""
    return html.escape(cut(value, limit), quote=False)


def relative_paths(text: str, root=None) -> str:
    """A message without the server's absolute paths: paths under `root` (the artifacts
    folder) relative to it, any other absolute path cut to its last part (…/name)."""
    text = str(text)
    if root is not None:
        text = text.replace(f"{str(root).rstrip('/')}/", "")
    return _ABSOLUTE_PATH.sub(lambda m: "…/" + m.group().rstrip("/").rsplit("/", 1)[-1], text)
