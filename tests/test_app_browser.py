"""The app end to end in a real browser: `streamlit run app.py` on the tiny run, driven by
headless Chromium through Playwright like a user: open it, pick a user in the sidebar's
selectbox, click through every page of pages/ twice. Each page must render (a title, no
exception, no error box) and keep the picked user; a warm page switch must be quick.
The driver is shared with benchmarks/app_latency.py. `make test` installs Chromium
(scripts/ensure_chromium.sh); this file skips only when there is none."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from app_latency import CHROMIUM, AppBrowser, app_server, chromium_page, chromium_ready, pages, table, visit_all  # noqa: E402

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not chromium_ready(), reason=f"no Chromium at {CHROMIUM}: run `make browser`")]

# Generous: two shared CPU cores, other work running beside the test.
FIRST_LOAD_BOUND_S = 60.0
WARM_SWITCH_BOUND_S = 5.0


@pytest.fixture(scope="module")
def tour(tiny_artifacts, tmp_path_factory):
    """The landing page, a user picked in the sidebar (not the one shown first), then
    every page twice; the Streamlit process is stopped whatever happens."""
    from urllm.app.reader import RunData

    run = RunData.open("tiny", tiny_artifacts)
    user = run.user_ids[run.test_lines[-1].user]
    assert user != run.user_ids[run.test_lines[0].user]  # the sidebar starts on the first line's user
    folder = tmp_path_factory.mktemp("app_browser")
    with app_server(tiny_artifacts, folder / "streamlit.log") as url, chromium_page() as page:
        result = visit_all(AppBrowser(page, url), visits=2, run="tiny", user=user, shots=folder)
    return result, user, folder


def test_the_sidebar_menu_lists_every_page_file_and_the_tour_visits_each_twice(tour):
    result, _, _ = tour
    assert result.menu == [path for _, path in pages()]  # pages/N_Name.py -> /Name, in N order
    assert len(result.menu) >= 2
    assert sorted(v.label for v in result.visits) == sorted([label for label, _ in pages()] * 2)


def test_the_menu_starts_at_home_and_there_is_no_deploy_button(tour):
    result, _, _ = tour
    assert [t.strip() for t in result.menu_titles][:2] == ["Home", "Overview"]
    assert "Compare" in [t.strip() for t in result.menu_titles]
    assert result.deploy_buttons == 0  # client.toolbarMode = "viewer" in .streamlit/config.toml


def test_every_page_renders_a_title_without_exception_or_error_box(tour):
    result, _, _ = tour
    for visit in result.visits:
        assert not visit.exceptions, f"{visit.label} shows an exception:\n{visit.exceptions[0]}"
        assert not visit.errors, f"{visit.label} shows an error: {visit.errors}"
        assert visit.title, f"{visit.label} has no title: did it render?"
    assert {v.label: v.title for v in result.visits}["Home"] == "URLLM Studio"


def test_the_user_picked_in_the_sidebar_stays_picked_on_every_page(tour):
    result, user, _ = tour
    assert result.user == user
    wrong = [(v.label, v.user) for v in result.visits if v.user != user]
    assert not wrong, f"picked {user!r} in the sidebar, but these page visits show another user: {wrong}"


def test_first_load_and_warm_page_switches_are_quick(tour, capsys):
    result, _, folder = tour
    seconds = result.seconds()
    with capsys.disabled():
        print(f"\napp in Chromium, tiny run, user {result.user}: first load {result.landing_s:.2f} s\n"
              f"{table(result)}\nscreenshots: {folder}")
    assert result.landing_s < FIRST_LOAD_BOUND_S
    slow = {label: times[-1] for label, times in seconds.items() if times[-1] > WARM_SWITCH_BOUND_S}
    assert not slow, f"warm page switches over {WARM_SWITCH_BOUND_S} s: {slow}"


def test_each_page_has_a_full_page_screenshot_with_content(tour):
    result, _, folder = tour
    shots = [v.shot for v in result.visits if v.shot is not None]
    assert sorted(shot.name for shot in shots) == sorted(f"{i}_{label}.png" for i, (label, _) in enumerate(pages()))
    for shot in shots:
        assert shot.parent == folder
        image = Image.open(shot).convert("L")
        # A blank page is a few flat greys; rendered text and charts bring many shades.
        assert image.height >= 900 and len(image.getcolors()) > 50, shot
