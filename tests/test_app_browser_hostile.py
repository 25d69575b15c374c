"""A hostile URL and a hostile run in a real browser: `streamlit run app.py` on a copy of the
tiny run whose titles, user ids, LLM answers and manifest texts are markdown links, images
and HTML pointing at another host (app_fixtures.HOSTILE), every page opened in headless
Chromium with that same text as `?user=` and `?domain=` (and once as `?run=`). No page may
hold a link or an image to another host, nor make the browser request one; the text shows
literally instead. Same server and browser driver as tests/test_app_browser.py."""
from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlencode, urljoin, urlsplit

import pytest
from app_fixtures import HOSTILE, hostile_run

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from app_latency import CHROMIUM, AppBrowser, app_server, chromium_page, chromium_ready, pages  # noqa: E402

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not chromium_ready(), reason=f"no Chromium at {CHROMIUM}: run `make browser`")]

LOCAL = {"127.0.0.1", "localhost"}
SHOWN = "[click](http://evil.example/x)"  # the start of HOSTILE, as a reader must see it
# every address the page's elements name: links (HTML and SVG), images, frames, scripts
REFERENCES = """() => [...document.querySelectorAll('[href], [src], [srcset], [*|href]')].flatMap(e =>
    ['href', 'src', 'srcset'].map(a => e.getAttribute(a)).concat([e.getAttributeNS('http://www.w3.org/1999/xlink', 'href')])
    .filter(Boolean).map(v => e.tagName.toLowerCase() + ' ' + v))"""


def foreign(address: str, base: str) -> bool:
    """Whether an address (relative ones resolved against the page) is on another host."""
    parts = urlsplit(urljoin(base, address.split(" ")[0]))
    return parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in LOCAL


@pytest.fixture(scope="module")
def visits(tiny_artifacts, tmp_path_factory):
    """[(label, url, [element references], body text, exceptions)] for every page with a
    hostile query, then the landing page with a hostile run name; and every request the
    browser made."""
    folder = tmp_path_factory.mktemp("browser_hostile")
    artifacts = hostile_run(tiny_artifacts, folder / "artifacts")
    requests, seen = [], []
    with app_server(artifacts, folder / "streamlit.log") as url, chromium_page() as page:
        page.on("request", lambda request: requests.append(request.url))
        app = AppBrowser(page, url)
        queries = [(label, path, {"run": "tiny", "user": HOSTILE, "domain": HOSTILE}) for label, path in pages()]
        for label, path, query in queries + [("app, unknown run", "/", {"run": HOSTILE})]:
            app.open(f"{path}?{urlencode(query)}")
            page.wait_for_timeout(500)  # charts draw after the script run
            seen.append((label, page.url, page.evaluate(REFERENCES), page.inner_text("body"), app.exceptions()))
    return seen, requests


def test_every_page_renders_without_exception(visits):
    seen, _ = visits
    assert len(seen) == len(pages()) + 1
    for label, _, _, _, exceptions in seen:
        assert not exceptions, f"{label}: {exceptions[0][:800]}"


def test_no_link_or_image_to_another_host(visits):
    seen, _ = visits
    for label, url, references, _, _ in seen:
        assert not [r for r in references if foreign(r.split(" ", 1)[1], url)], label


def test_the_browser_requests_nothing_from_another_host(visits):
    _, requests = visits
    assert requests  # the recorder saw the app's own requests
    assert not [r for r in requests if foreign(r, "http://127.0.0.1/")]


def test_the_hostile_text_is_shown_literally(visits):
    seen, _ = visits
    for label, _, _, text, _ in seen:
        assert SHOWN in text, f"{label} does not show the URL's text as text"
