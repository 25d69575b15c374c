"""Helpers for the app's AppTest tests (streamlit.testing.v1)."""
from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# every page file (app.py is the router and runs pages/0_Home.py): a new page is covered by
# the tests that loop over pages without being listed anywhere
PAGES = ["app.py", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pages").glob("*.py"))]


def run_page(page: str, monkeypatch, artifacts: Path, timeout: float = 60, **params):
    """Run `page` ("app.py" or "pages/N_Name.py") against `artifacts` with URL query
    params; returns the finished AppTest."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("URLLM_ARTIFACTS", str(artifacts))
    at = AppTest.from_file(str(ROOT / page), default_timeout=timeout)
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def copy_run(src_artifacts: Path, dst_artifacts: Path, name: str = "tiny") -> Path:
    """A private copy of a run to damage in a test; returns the new artifacts folder."""
    dst_artifacts.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src_artifacts / name, dst_artifacts / name)
    return dst_artifacts


def texts(at) -> str:
    """Every markdown, caption, header, info, warning and error text of a run, joined."""
    parts = []
    for kind in ("markdown", "caption", "title", "header", "subheader", "info", "warning", "error", "success"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def first_test_user(artifacts: Path, name: str = "tiny") -> tuple[str, str]:
    """(user id, domain name) of the run's first test line."""
    from urllm.app.reader import RunData

    run = RunData.open(name, artifacts)
    line = run.test_lines[0]
    return run.user_ids[line.user], run.domains[line.domain]


# ---- hostile values: markdown and HTML that would link to, or load from, another host ------
HOSTILE = ("[click](http://evil.example/x)![x](http://evil.example/img.png)<img src=http://evil.example/a.png>"
           " *b* _i_ `c` $x$ :red[r] www.evil.example <a href=http://evil.example/a>a</a> &lt;")


def _rewrite_json(path: Path, change) -> None:
    import json

    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def hostile_run(src_artifacts: Path, dst_artifacts: Path, name: str = "tiny") -> Path:
    """A copy of a run whose item titles, user ids, LLM answers, profiles and manifest texts
    all hold HOSTILE; returns the new artifacts folder."""
    folder = copy_run(src_artifacts, dst_artifacts, name) / name

    def data(d):
        d["items"]["title"] = [f"t{i} {HOSTILE}" for i in range(len(d["items"]["title"]))]
        for j, user in enumerate(d["users"]):
            user["id"] = f"u{j} {HOSTILE}"

    def answers(records):
        for record in records:
            for output in record["outputs"]:
                output["text"] = HOSTILE

    def manifest(m):
        m["git_commit"] = m["config"]["profile"] = m["dataset"]["spec"] = HOSTILE

    def profiles(p):
        for profile in p["test_lines"].values():
            profile["text"] = HOSTILE
            for cluster in profile["clusters"]:
                cluster["summary"] = HOSTILE

    def lora(report):
        report["config"] |= {"lr": HOSTILE, "target_modules": [HOSTILE]}

    _rewrite_json(folder / "data.json", data)
    _rewrite_json(folder / "generations.json", lambda g: answers(
        v for per_k in g["records"].values() for rec in per_k.values() for v in rec["variants"].values()))
    _rewrite_json(folder / "rsllm.json", lambda r: answers(r["records"].values()))
    _rewrite_json(folder / "profiles.json", profiles)
    _rewrite_json(folder / "lora" / "training.json", lora)
    _rewrite_json(folder / "manifest.json", manifest)
    return dst_artifacts


def markdown_texts(at) -> list[str]:
    """Every text of a finished AppTest that Streamlit renders as markdown: markdown and
    captions (not those with unsafe_allow_html), headings, alerts, and the labels of widgets,
    tabs, expanders and metrics (a metric's value too, and a radio's options)."""
    parts = [str(e.value) for kind in ("markdown", "caption") for e in getattr(at, kind) if not e.proto.allow_html]
    parts += [str(e.value) for kind in ("title", "header", "subheader", "info", "warning", "error", "success")
              for e in getattr(at, kind)]
    parts += [e.label for kind in ("expander", "tabs", "metric", "button", "checkbox", "radio", "selectbox", "slider",
                                   "multiselect") for e in getattr(at, kind)]
    parts += [e.value for e in at.metric] + [option for radio in at.radio for option in radio.options]
    return parts


def unescaped_markup(text: str) -> list[str]:
    """What in a markdown text would render as a link, an image or HTML: outside code spans
    (which show their text verbatim), an unescaped "<", or a bare URL or e-mail address in
    the text once its escapes are resolved (Streamlit links those after parsing)."""
    import re

    plain = re.sub(r"(?<!\\)`[^`]*`", "", text)
    resolved = re.sub(r"\\(.)", r"\1", plain)
    return re.findall(r"(?<!\\)<\w*", plain) + re.findall(r"https?://|www\.|\w@\w", resolved, re.IGNORECASE)
