"""Run files of the right JSON type but the wrong shape (and corrupt safetensors files) are
named on every page: the run is checked file by file against urllm/schema.py when the
app opens it, so each page shows one error naming the file (relative to the artifacts
folder) and where in it, never an exception. Also the shape checker itself."""
import json

import numpy as np
import pytest
from app_fixtures import PAGES, copy_run, run_page, texts

from urllm.app.reader import RunData, RunError
from urllm.app.safe_text import escape_markdown
from urllm.schema import ANY, Either, List, Map, Row, ShapeError, check

GARBAGE = b"\x8f not a safetensors file " * 4


def first_record(g):
    line = next(iter(g["records"]))
    k = next(iter(g["records"][line]))
    g["records"][line][k] = ["not", "a", "record"]


def bad_lines(r):
    for method in r["methods"]:
        r["methods"][method] = {"0": 1}


def missing_tensor(path):
    from safetensors.numpy import load_file, save_file

    tensors = load_file(path)
    del tensors["users_domain.xy"]
    save_file(tensors, path)


# case -> (run file, how to damage it: a change of its JSON, or bytes / a function of its path, what the message says)
CASES = {
    "manifest stages not a list": ("manifest.json", lambda m: m.update(stages={"data": m["stages"][0]}),
                                   "stages expected a list, got an object"),
    "manifest metrics entry not an object": ("manifest.json", lambda m: m["metrics"].update(pop=0.5),
                                             "metrics.pop expected an object, got a number"),
    "manifest stage without a name": ("manifest.json", lambda m: m["stages"][1].pop("name"),
                                      "stages[1] has no 'name' field"),
    "generation record not an object": ("generations.json", first_record, "expected an object, got a list"),
    "line_ranks methods not lists": ("line_ranks.json", bad_lines, "expected a list of numbers and nulls, got an object"),
    "data.json user not an object": ("data.json", lambda d: d["users"].__setitem__(0, "u0"),
                                     "users[0] expected an object, got a string"),
    "data.json line naming no item": ("data.json", lambda d: d["lines"]["test"][0].__setitem__(2, 10**6),
                                      "lines.test: a line names a user, domain or item that does not exist"),
    "rsllm outputs not a list": ("rsllm.json", lambda r: next(iter(r["records"].values())).update(outputs="x"),
                                 "outputs expected a list, got a string"),
    "profile clusters not objects": ("profiles.json",
                                     lambda p: next(iter(p["test_lines"].values())).update(clusters=[1]),
                                     "clusters[0] expected an object, got an integer"),
    "curve rows not objects": ("sasrec_curve.json", lambda c: c.__setitem__(0, 3), "[0] expected an object, got an integer"),
    "LoRA report without a curve": ("lora/training.json", lambda r: r.pop("curve"), "no 'curve' field"),
    "garbage rankings": ("stage1_rankings.safetensors", GARBAGE, "corrupt safetensors file"),
    "garbage LoRA adapter": ("lora/adapter_model.safetensors", GARBAGE, "corrupt safetensors file"),
    "projections without a tensor": ("projections.safetensors", missing_tensor, "no 'users_domain.xy' tensor"),
}


def damage(folder, file: str, how) -> None:
    path = folder / file
    if isinstance(how, bytes):
        path.write_bytes(how)
    elif file.endswith(".safetensors"):
        how(path)
    else:
        data = json.loads(path.read_text())
        how(data)
        path.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def damaged(tiny_artifacts, tmp_path_factory):
    """case -> an artifacts folder holding the tiny run with that one file damaged."""
    out = {}
    for n, (case, (file, how, _)) in enumerate(CASES.items()):
        arts = copy_run(tiny_artifacts, tmp_path_factory.mktemp(f"damaged{n}"))
        damage(arts / "tiny", file, how)
        out[case] = arts
    return out


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("case", CASES)
def test_a_malformed_file_is_named_on_every_page(case, page, damaged, monkeypatch):
    file, _, says = CASES[case]
    at = run_page(page, monkeypatch, damaged[case], run="tiny")
    assert not at.exception, at.exception[0].value
    errors = [e.value for e in at.error]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"`tiny/{file}`: ") and escape_markdown(says) in errors[0], errors[0]
    assert str(damaged[case]) not in texts(at)  # relative to the artifacts folder only


def test_run_data_raises_the_same_message(damaged):
    file, _, says = CASES["generation record not an object"]
    with pytest.raises(RunError) as err:
        RunData.open("tiny", damaged["generation record not an object"]).check()
    assert err.value.file == f"tiny/{file}" and says in err.value.problem


def test_an_adapter_that_does_not_fit_the_base_model_is_named(tiny_artifacts, tmp_path, monkeypatch):
    """A readable weights file of the wrong shapes: peft fails on it when the Generation
    page's live button loads the model. The Prompt page needs the tokenizer alone, so it
    still shows the prompt."""
    from safetensors.numpy import load_file, save_file

    arts = copy_run(tiny_artifacts, tmp_path)
    path = arts / "tiny" / "lora" / "adapter_model.safetensors"
    save_file({k: np.zeros((1, 1), v.dtype) for k, v in load_file(path).items()}, path)
    at = run_page("pages/4_Prompt.py", monkeypatch, arts, run="tiny")
    assert not at.exception and not at.error and at.download_button
    at = run_page("pages/5_Generation.py", monkeypatch, arts, run="tiny")
    at.button(key="_gen_live").click().run()
    assert not at.exception
    [error] = [e.value for e in at.error]
    assert error.startswith("`tiny/lora/`: the LoRA adapter does not load") and "size mismatch" in error


# ---- the shape checker --------------------------------------------------------------------
@pytest.mark.parametrize("value, shape, message", [
    ({"stages": {}}, {"stages": List(dict)}, "stages expected a list, got an object"),
    ({}, {"stages": List(dict)}, "no 'stages' field"),
    ({"s": [{"key": "k"}]}, {"s": List({"name": str})}, "s[0] has no 'name' field"),
    ({"a": [1, 2, "3"]}, {"a": List(int)}, "a[2] expected an integer, got a string"),
    ({"a": [1, True]}, {"a": List(float)}, "a[1] expected a number, got a boolean"),
    ([[1, 2, 3]], List(Row(int, int)), "[0] expected a list of 2 items, got a list of 3 items"),
    ({"r": {"x y": 1}}, {"r": Map(int, int_keys=True)}, 'r key "x y" expected an integer'),
    ({"r": {"7": {"a.b": "s"}}}, {"r": Map({"*": float}, int_keys=True)}, 'r.7["a.b"] expected a number, got a string'),
    ({"m": {"pop": 3}}, {"m": Either(None, Map({"overall?": dict}))}, "m.pop expected an object, got an integer"),
    ({"m": [3]}, {"m": Either(None, Map(int))}, "m expected null or an object, got a list"),
])
def test_check_names_the_place_and_the_types(value, shape, message):
    with pytest.raises(ShapeError) as err:
        check(value, shape)
    assert str(err.value) == message


def test_check_accepts_what_fits():
    check({"a": [1, 2.5, None], "b": {"1": [0, 1, 2, [3]]}, "c": "extra keys are allowed", "d": {"x": 1}},
          {"a": List(Either(float, None)), "b": Map(Row(int, int, int, List(int)), int_keys=True), "opt?": str,
           "d": {"*": ANY}})
