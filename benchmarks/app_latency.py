"""How fast the app answers in a real browser: a fresh `streamlit run app.py` on a named
run, driven by headless Chromium (Debian's /usr/bin/chromium, or $CHROMIUM) through
Playwright, the way a user does it: open the landing page, pick a user in the sidebar,
then click through every page of pages/ several times.

    make browser                                   # once: installs chromium when missing
    .venv/bin/python benchmarks/app_latency.py [--artifacts artifacts] [--run demo]
                                               [--user ID] [--visits 4] [--shots DIR]

Prints one row per page: the first visit (cold: the page's imports and its cached data;
no page loads the LLM until the Generation page is asked to generate live, so the Prompt
page's first visit is its tokenizer's) and the median of the later visits (warm caches: a
page switch). Targets: any first page visit under 5 s, the Prompt page's under 3 s; a
warm page switch under 1 s. Times are wall-clock from the click to the end of the script
run (Streamlit idle, no "Running..."), so they depend on the machine's load.

tests/test_app_browser.py runs the same procedure (app_server, AppBrowser, visit_all) on
a tiny run and asserts on what it saw.
"""
from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Playwright cannot download its own browser here: the system one, without a display or GPU.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 900}
COLD_TARGET_S, PROMPT_TARGET_S, WARM_TARGET_S = 5.0, 3.0, 1.0

# The page is idle: the script run's output is on screen, no "Running..." widget, nothing stale.
IDLE = """
() => document.querySelector('[data-testid="stApp"]')?.getAttribute('data-test-script-state') === 'notRunning'
  && document.querySelector('[data-testid="stStatusWidget"]') === null
  && document.querySelector('[data-testid="stMainBlockContainer"]') !== null
  && document.querySelector('[data-stale="true"]') === null
"""


def chromium_ready() -> bool:
    return os.access(CHROMIUM, os.X_OK)


def pages() -> list[tuple[str, str]]:
    """(label, URL path) of every pages/N_Name.py in menu order (app.py's router): 0_Home.py,
    the landing page, is at "/", every other page at /Name."""
    found = []
    for file in (ROOT / "pages").glob("*.py"):
        number, _, name = file.stem.partition("_")
        if number.isdigit() and name:
            found.append((int(number), name))
    return [(name, "/" if number == 0 else f"/{name}") for number, name in sorted(found)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def app_server(artifacts: Path, log_path: Path, start_timeout: float = 120):
    """A fresh `streamlit run app.py` reading `artifacts`; yields its base URL and always
    stops the process on the way out."""
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
               "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--server.fileWatcherType", "none"]
    env = os.environ | {"URLLM_ARTIFACTS": str(Path(artifacts).resolve())}
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"streamlit exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit not healthy after {start_timeout:.0f} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def chromium_page():
    """A Playwright page in headless system Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport=VIEWPORT)
        finally:
            browser.close()


@dataclass
class AppBrowser:
    """Drives one browser session of the app; every action returns once Streamlit is idle."""

    page: object  # playwright.sync_api.Page
    base_url: str
    timeout_s: float = 180

    def __post_init__(self):
        # Script runs are counted from the server's messages: the page's own run-state
        # attribute can skip "running" when a run is quick.
        self.finished_runs = 0
        self.page.on("websocket", lambda socket: socket.on("framereceived", self._count_finished))

    def _count_finished(self, payload) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        if isinstance(payload, bytes):
            message = ForwardMsg.FromString(payload)
            if message.WhichOneof("type") == "script_finished" and message.script_finished in (
                    ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_WITH_COMPILE_ERROR):
                self.finished_runs += 1

    def _idle_after(self, what: str, action) -> float:
        """Seconds from `action()` until the script run it starts has finished and shows."""
        from playwright.sync_api import TimeoutError

        before = self.finished_runs
        start = time.perf_counter()
        action()
        try:
            while self.finished_runs == before:  # waiting lets Playwright deliver the frames
                if time.perf_counter() - start > self.timeout_s:
                    raise TimeoutError("no script run finished")
                self.page.wait_for_timeout(10)
            self.page.wait_for_function(IDLE, timeout=self.timeout_s * 1000)
        except TimeoutError:
            state = self.page.evaluate("""() => [location.href,
                document.querySelector('[data-testid="stApp"]')?.getAttribute('data-test-script-state')]""")
            raise AssertionError(f"{what}: the app was not idle after {self.timeout_s:.0f} s "
                                 f"(url, script state: {state})") from None
        return time.perf_counter() - start

    def open(self, path: str = "/") -> float:
        """Load the app at `path` in this tab (a new Streamlit session): seconds until idle."""
        return self._idle_after(f"open {path}", lambda: self.page.goto(self.base_url + path))

    def pick_user(self, user: str | None = None) -> str:
        """Choose a user in the sidebar's user selectbox with the mouse (typing to filter
        when `user` is given; else the fourth option, or the last when fewer); returns it."""
        box = self.page.locator(".st-key-_pick_user")
        current = box.locator("input").input_value()
        box.locator('button[aria-label="Open"]').click()
        options = self.page.locator('[role="listbox"] [role="option"]')
        options.first.wait_for()
        if user is not None:
            box.locator("input").fill(user)
            choice = options.filter(has_text=re.compile(rf"^{re.escape(user)}$"))
        else:
            choice = options.nth(min(3, options.count() - 1))
            user = choice.inner_text().strip()
        if user == current:
            self.page.keyboard.press("Escape")
            return user
        self._idle_after(f"pick user {user}", choice.click)
        self.page.wait_for_function("u => new URLSearchParams(location.search).get('user') === u", arg=user)
        return user

    def switch(self, path: str) -> float:
        """Go to the page at URL `path` by clicking its sidebar link (by URL, with the
        current query, when the menu does not show it): seconds until idle."""
        link = self.page.locator(f'[data-testid="stSidebarNavLink"][href="{self.base_url}{path}"]')
        if not link.count():
            return self.open(path + self.page.evaluate("location.search"))
        seconds = self._idle_after(f"switch to {path}", link.click)
        self.page.wait_for_function("p => location.pathname === p", arg=path)
        return seconds

    def shown_user(self) -> str | None:
        """The user in the sidebar's selectbox; None when the page shows no selectbox."""
        box = self.page.locator(".st-key-_pick_user input")
        return box.input_value() if box.count() else None

    def menu(self) -> list[str]:
        """URL paths of the pages in the sidebar's navigation menu, in order."""
        hrefs = self.page.locator('[data-testid="stSidebarNavLink"]').evaluate_all("links => links.map(a => a.href)")
        return [href.removeprefix(self.base_url) for href in hrefs]

    def title(self) -> str:
        """The first heading of the page's main block ("" when it has none)."""
        heading = self.page.locator('[data-testid="stMainBlockContainer"] h1')
        return heading.first.inner_text().strip() if heading.count() else ""

    def exceptions(self) -> list[str]:
        return self.page.locator('[data-testid="stException"]').all_inner_texts()

    def errors(self) -> list[str]:
        return self.page.locator('[data-testid="stAlertContentError"]').all_inner_texts()

    def screenshot(self, path: Path) -> Path:
        """The whole page: Streamlit scrolls inside its main block, so the viewport is
        stretched to the content's height for the shot."""
        height = self.page.evaluate("""() => Math.max(...['stMain', 'stMainBlockContainer', 'stSidebarContent']
            .map(id => document.querySelector(`[data-testid="${id}"]`)?.scrollHeight || 0))""")
        self.page.set_viewport_size({"width": VIEWPORT["width"], "height": min(max(VIEWPORT["height"], height + 80), 12000)})
        self.page.wait_for_timeout(400)  # plotly redraws at the new size
        self.page.screenshot(path=str(path), full_page=True)
        self.page.set_viewport_size(VIEWPORT)
        return path


@dataclass
class Visit:
    """One page shown: how long it took and what it showed."""

    label: str
    seconds: float
    title: str  # the page's first heading
    user: str | None  # the user in the sidebar
    exceptions: list[str]
    errors: list[str]
    shot: Path | None = None


@dataclass
class Visits:
    """Everything one pass over the app saw, in visit order."""

    user: str  # the user picked in the sidebar
    landing_s: float  # the app's first load, a new session on cold caches
    menu: list[str]  # URL paths in the sidebar's page menu
    deploy_buttons: int = 0  # Streamlit's "Deploy" button on the landing page (config hides it)
    menu_titles: list[str] = field(default_factory=list)  # the menu's texts
    visits: list[Visit] = field(default_factory=list)

    def seconds(self) -> dict[str, list[float]]:
        """Page label -> each visit's seconds, the landing page starting with the first load."""
        out = {"Home": [self.landing_s]}
        for visit in self.visits:
            out.setdefault(visit.label, []).append(visit.seconds)
        return out

    def problems(self) -> list[str]:
        out = []
        for v in self.visits:
            out += [f"{v.label}: exception: {text[:800]}" for text in v.exceptions]
            out += [f"{v.label}: error box: {text[:300]}" for text in v.errors]
            if v.user != self.user:
                out.append(f"{v.label}: the sidebar shows user {v.user!r}, not the picked {self.user!r}")
        return out


def visit_all(app: AppBrowser, visits: int, run: str | None = None, user: str | None = None,
              shots: Path | None = None) -> Visits:
    """Open the landing page (on `run` when given), pick a user in the sidebar, then
    click through every page `visits` times, each pass ending on the landing page;
    full-page screenshots into `shots` at the last pass."""
    landing = app.open(f"/?run={run}" if run else "/")
    result = Visits(user=app.pick_user(user), landing_s=landing, menu=app.menu(),
                    deploy_buttons=app.page.locator('[data-testid="stAppDeployButton"]').count(),
                    menu_titles=app.page.locator('[data-testid="stSidebarNavLink"]').all_inner_texts())
    menu = pages()
    order = menu[1:] + menu[:1]  # a click on the page already shown would not rerun it
    for n in range(visits):
        for label, path in order:
            seconds = app.switch(path)
            visit = Visit(label, seconds, app.title(), app.shown_user(), app.exceptions(), app.errors())
            if shots is not None and n == visits - 1:
                visit.shot = app.screenshot(shots / f"{menu.index((label, path))}_{label}.png")
            result.visits.append(visit)
    return result


def table(result: Visits) -> str:
    """One row per page; the landing page's first visit is the app's first load."""
    rows = [f"{'page':<16} {'first visit s':>14} {'warm median s':>14} {'warm min-max s':>15}"]
    for label, seconds in result.seconds().items():
        warm = seconds[1:]
        rows.append(f"{label:<16} {seconds[0]:>14.2f} {statistics.median(warm):>14.2f} "
                    f"{min(warm):>7.2f}-{max(warm):<7.2f}" if warm else f"{label:<16} {seconds[0]:>14.2f}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts", type=Path, default=ROOT / "artifacts", help="folder holding the runs")
    parser.add_argument("--run", default="demo", help="run name under --artifacts")
    parser.add_argument("--user", help="user id to pick (default: the fourth in the sidebar list)")
    parser.add_argument("--visits", type=int, default=4, help="visits per page: the first is cold, the others warm")
    parser.add_argument("--shots", type=Path, help="folder for a full-page screenshot of each page")
    args = parser.parse_args(argv)
    if not chromium_ready():
        print(f"no Chromium at {CHROMIUM}: run `make browser` (or set CHROMIUM)")
        return 2
    if not (args.artifacts / args.run / "manifest.json").is_file():
        print(f"no run {args.run!r} under {args.artifacts}")
        return 2
    if args.shots:
        args.shots.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp, app_server(args.artifacts, Path(tmp) / "streamlit.log") as url, \
            chromium_page() as page:
        result = visit_all(AppBrowser(page, url), max(args.visits, 2), args.run, args.user, args.shots)

    seconds = result.seconds()
    cold = max(times[0] for times in seconds.values())
    warm = max(statistics.median(times[1:]) for times in seconds.values())
    print(f"run {args.run} · user {result.user} · {os.cpu_count()} CPUs, load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(table(result))
    print(f"slowest first visit {cold:.2f} s (target < {COLD_TARGET_S:.0f} s): "
          f"{'ok' if cold < COLD_TARGET_S else 'MISSED'}")
    prompt = seconds["Prompt"][0]
    print(f"Prompt page first visit {prompt:.2f} s (target < {PROMPT_TARGET_S:.0f} s, the tokenizer only): "
          f"{'ok' if prompt < PROMPT_TARGET_S else 'MISSED'}")
    print(f"slowest warm page switch {warm:.2f} s (target < {WARM_TARGET_S:.0f} s): "
          f"{'ok' if warm < WARM_TARGET_S else 'MISSED'}")
    for problem in dict.fromkeys(result.problems()):  # each once, not once per pass
        print("problem:", problem)
    if args.shots:
        print(f"screenshots in {args.shots}")
    return 1 if result.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
