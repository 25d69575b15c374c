"""The app is its own torch-free package: importing a page (its top-level import
statements, as Streamlit runs them) or any module of urllm/app loads no torch, no
torch_geometric, peft or faiss, and no training code (urllm.pipeline, urllm.models and
urllm.methods beyond their torch-free config modules). The live model loads torch when
it generates, inside the function that does.

Every target is checked in a fresh interpreter state: one subprocess imports what all
pages share and may import (streamlit, pandas, plotly), checks itself, then forks one
child per target, so a module one target imports cannot hide another's offence."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["app.py", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pages").glob("*.py"))]
MODULES = sorted(f"urllm.app.{p.stem}" for p in (ROOT / "urllm" / "app").glob("*.py") if p.stem != "__init__")
CONTROLS = ["urllm.pipeline.writer", "urllm.models.config"]  # training code, and a config the app may import

CHECK = r'''
import ast, json, os, sys
sys.path.insert(0, ROOT)

HEAVY = ("torch", "torch_geometric", "peft", "faiss", "urllm.pipeline")
CONFIG_ONLY = ("urllm.models", "urllm.methods")  # training code but for their config modules


def offenders():
    bad = []
    for name in sorted(sys.modules):
        if any(name == h or name.startswith(h + ".") for h in HEAVY):
            bad.append(name)
        elif any(name.startswith(p + ".") and name != p + ".config" for p in CONFIG_ONLY):
            bad.append(name)
    return bad


def page_imports(path):
    """Exec only the page's top-level import statements."""
    tree = ast.parse(open(os.path.join(ROOT, path), encoding="utf-8").read(), path)
    body = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    exec(compile(ast.Module(body=body, type_ignores=[]), path, "exec"), {"__name__": "__page__"})


def check(target):
    """Offenders after importing `target` in a forked child (its result through a pipe)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            page_imports(target) if target.endswith(".py") else __import__(target)
            result = offenders()
        except BaseException as err:
            result = [f"import failed: {type(err).__name__}: {err}"]
        os.write(write, json.dumps(result).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        answer = f.read()
    os.waitpid(pid, 0)
    return json.loads(answer)


import pandas, plotly.express, plotly.graph_objects, streamlit  # what every page may import
result = {"(shared imports)": offenders()}
for target in TARGETS:
    result[target] = check(target)
print(json.dumps(result))
'''


@pytest.fixture(scope="module")
def found() -> dict[str, list[str]]:
    """target -> the heavy modules in sys.modules after importing it."""
    code = f"ROOT = {str(ROOT)!r}\nTARGETS = {PAGES + MODULES + CONTROLS!r}\n" + CHECK
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_shared_imports_are_light(found):
    assert found["(shared imports)"] == []


@pytest.mark.parametrize("target", PAGES + MODULES)
def test_importing_loads_no_torch_and_no_training_code(target, found):
    assert found[target] == [], f"{target} imports {found[target]}"


def test_the_check_sees_a_heavy_import(found):
    """The checker itself: a module of the pipeline is caught, a torch-free config is not."""
    assert "urllm.pipeline.writer" in found["urllm.pipeline.writer"]
    assert found["urllm.models.config"] == []


TOKENIZER_CHECK = r'''
import json, sys
from urllm.llm.tokenizer import load_tokenizer
from urllm.llm.prompt import chat_text

text = chat_text(load_tokenizer("tiny"), "Recommend one new [art] item: Watercolour Paper, 12 sheets.")
alone = load_tokenizer("tiny")(text, add_special_tokens=False)["input_ids"]
heavy = [m for m in ("torch", "peft") if m in sys.modules]
from urllm.llm.base import load_named  # the model's own tokenizer (torch from here on)

_, tokenizer = load_named("tiny")
print(json.dumps({"heavy": heavy, "same": alone == tokenizer(text, add_special_tokens=False)["input_ids"],
                  "chat_text": text == chat_text(tokenizer, "Recommend one new [art] item: Watercolour Paper, 12 sheets."),
                  "pad": [load_tokenizer("tiny").pad_token, load_tokenizer("tiny").padding_side]}))
'''


def test_the_tokenizer_loads_without_torch_and_tokenizes_as_the_models():
    done = subprocess.run([sys.executable, "-c", TOKENIZER_CHECK], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["heavy"] == [] and got["same"] and got["chat_text"]
    assert got["pad"][0] is not None and got["pad"][1] == "left"


def test_a_local_tokenizer_folder_is_named_and_a_missing_one_is_an_error(tmp_path):
    from urllm.llm.base import BaseModelError
    from urllm.llm.tokenizer import tokenizer_folder

    (tmp_path / "config.json").write_text("{}")
    assert tokenizer_folder(str(tmp_path)) == tmp_path.resolve()
    with pytest.raises(BaseModelError, match="does not exist"):
        tokenizer_folder(str(tmp_path / "nowhere") + "/")
