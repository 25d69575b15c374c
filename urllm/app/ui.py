"""What every page of the app shares: cached loaders and the sidebar that picks the run,
the user and the target domain.

The choice lives in st.session_state (so it survives page switches) and in the URL
(`?run=...&user=...&domain=...`, so a pasted link reproduces the view); a value named by
the URL wins, an unknown one gets a warning (showing the value as code, never as
markdown) and a fallback. A run is checked file by file when it is opened
(RunData.check), so a malformed file stops every page with a message naming it.

    sel = sidebar()          # on top of every page; stops the page when there is no run
    sel.run, sel.line        # urllm.app.reader.RunData, urllm.app.reader.Line (None: user has no test line)
"""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from urllm.app.reader import Line, RunData, RunError, artifacts_dir, artifacts_name, filter_lines, list_runs
from urllm.app.safe_text import TEXT_LIMIT, escape_markdown, inline_code, relative_paths

NO_RUNS = ("No runs yet under `{dir}`. Make one with `make demo` (the demo profile, then the app) or "
           "`python train.py --profile tiny --out {dir}/tiny` (a minute, random tiny LM).")


def _stamp(name: str) -> float:
    """Manifest mtime: a rerun of train.py into the same folder invalidates the caches."""
    try:
        return (artifacts_dir() / name / "manifest.json").stat().st_mtime
    except OSError:
        return 0.0


@st.cache_resource(show_spinner="Reading the run ...", max_entries=4)
def _open_run(folder: str, name: str, stamp: float) -> RunData:
    return RunData.open(name).check()  # every file of the run checked once, here


def open_run(name: str) -> RunData:
    return _open_run(str(artifacts_dir()), name, _stamp(name))


@st.cache_resource(show_spinner="Loading the run's tokenizer ...", max_entries=4)
def _prompts(folder: str, name: str, stamp: float):
    from urllm.app.live import RunPrompts

    return RunPrompts.load(open_run(name))


def run_prompts(run: RunData):
    """The run's prompt builder over its base model's tokenizer (no model, no torch),
    loaded once per process."""
    return _prompts(str(artifacts_dir()), run.name, _stamp(run.name))


@st.cache_resource(show_spinner="Loading the run's LLM and adapter ...", max_entries=2)
def _live(folder: str, name: str, stamp: float):
    from urllm.app.live import LiveModel

    return LiveModel.load(open_run(name))


def live_model(run: RunData):
    """The run's LLM (+ LoRA adapter) for live generation, loaded once per process."""
    return _live(str(artifacts_dir()), run.name, _stamp(run.name))


@st.cache_data(show_spinner="Scoring every test line ...", max_entries=4)
def _line_table(folder: str, name: str, stamp: float):
    return open_run(name).line_table()


def line_table(run: RunData):
    """RunData.line_table(), computed once per run."""
    return _line_table(str(artifacts_dir()), run.name, _stamp(run.name))


@st.cache_data(show_spinner="Rescoring the methods on these lines ...", max_entries=48)
def _metric_tables(folder: str, name: str, stamp: float, lines: tuple[int, ...] | None):
    return open_run(name).metric_tables(lines)


def metric_tables(run: RunData, lines=None):
    """RunData.metric_tables(lines), computed once per run and line set."""
    chosen = None if lines is None else tuple(sorted({int(i) for i in lines}))
    return _metric_tables(str(artifacts_dir()), run.name, _stamp(run.name), chosen)


def metrics_frame(container, rows) -> None:
    """A table of urllm.app.case_study.metric_rows (or a frame of them indexed by method): a row
    per method, numbers to 4 decimals, the columns no method has a value for left out (an
    older run has no intervals)."""
    import pandas as pd

    if len(rows) == 0:
        container.caption("No method was scored here.")
        return
    table = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows).set_index("method")
    table = table.dropna(axis=1, how="all")
    config = {c: st.column_config.NumberColumn(format="%+.4f" if c.startswith("Δ ") else "%.4f")
              for c in table.columns if c != "n" and table[c].dtype.kind == "f"}
    container.dataframe(table, column_config=config, placeholder="–")


def error_text(err: Exception) -> str:
    """An error message for st.error: the file as code, the rest escaped and cut, and no
    absolute path of the server (a RunError names files relative to the artifacts folder)."""
    problem = escape_markdown(relative_paths(getattr(err, "problem", err), artifacts_dir()), TEXT_LIMIT)
    file = getattr(err, "file", None)
    return f"{inline_code(file)}: {problem}" if file else problem


def guard(fn, *args, **kwargs):
    """Call fn; on a RunError (missing or corrupt file) show the message and stop the page."""
    try:
        return fn(*args, **kwargs)
    except RunError as err:
        st.error(error_text(err))
        st.stop()


def need(run: RunData, stage: str, what: str) -> None:
    """Stop the page with a message when the run lacks the stage that makes `what`."""
    if not run.has(stage):
        st.info(f"Run {inline_code(run.name)} has no {stage!r} stage yet, so no {what}. Finish it with "
                f"{inline_code(f'python train.py --out {artifacts_name()}/{run.name} ...')} (same settings: "
                "finished stages are reused).")
        st.stop()


DEPENDENTS = {"run": ("user", "domain"), "user": ("domain",), "domain": ()}


@dataclass
class Selection:
    run: RunData
    line: Line | None

    @property
    def user(self) -> str | None:
        return self.run.user_ids[self.line.user] if self.line else None

    @property
    def domain(self) -> str | None:
        return self.run.domains[self.line.domain] if self.line else None


def _bound(key: str, current, label: str, widget, options, **kwargs):
    """A sidebar widget showing the session's choice `key`; a change goes back to the choice."""
    store = st.session_state.setdefault("selection", {})
    wkey = f"_pick_{key}"
    # set on every run: after a page switch the widget's old state would otherwise be
    # dropped and the widget come back with its first option
    st.session_state[wkey] = current

    def changed():  # runs before the rerun: the URL must agree, or _wanted would undo the change
        store[key] = st.session_state[wkey]
        st.query_params[key] = store[key]
        for later in DEPENDENTS[key]:  # another run may not hold this user: let them fall back quietly
            st.query_params.pop(later, None)

    return widget(label, options, key=wkey, on_change=changed, **kwargs)


def _wanted(key: str) -> tuple[str | None, bool]:
    """(value, named by the URL?): the URL wins (a pasted link), else the session's choice."""
    store = st.session_state.setdefault("selection", {})
    url = st.query_params.get(key)
    if url is not None:
        store[key] = url
    return store.get(key), url is not None


def _filtered_users(run: RunData) -> list[str]:
    table = line_table(run)
    bar = st.sidebar
    with bar.expander("Filter users", expanded=False):
        cold = st.checkbox("cold-start only", key="_f_cold",
                           help="at most 2 items of the target domain in the history")
        hit = st.radio("dual-graph top-10", ["all", "hit", "miss"], horizontal=True, key="_f_hit")
        ood = st.checkbox("out-of-domain cases only", key="_f_ood",
                          help="a free-text LLM answer named an item of the other domain (evaluated lines)")
        evaluated = st.checkbox("with precomputed generations", key="_f_eval")
    return list(dict.fromkeys(filter_lines(table, cold, hit, ood, evaluated)["user"]))


def sidebar() -> Selection:
    runs = list_runs()
    if not runs:
        st.info(NO_RUNS.format(dir=artifacts_name()))
        st.stop()
    store = st.session_state.setdefault("selection", {})

    name, from_url = _wanted("run")
    if name not in runs:
        if from_url:
            st.warning(f"Run {inline_code(name)} is not a run of the {inline_code(artifacts_name())} folder; "
                       f"showing {inline_code(runs[0])}.")
        name = store["run"] = runs[0]
    name = _bound("run", name, "Run", st.sidebar.selectbox, runs)
    run = guard(open_run, name)
    if not run.manifest.get("complete"):
        st.sidebar.caption("This run is incomplete: pages show what its finished stages hold.")

    line = None
    if run.has("data"):
        users = guard(_filtered_users, run)
        user, from_url = _wanted("user")
        if user is not None and not run.lines_of(user):
            if from_url:
                why = "is not in" if run.user_index(user) is None else "has no test line in"
                st.warning(f"User {inline_code(user)} {why} run {inline_code(name)}; showing another user.")
            user = None
        if not users:
            st.sidebar.warning("No user matches the filters.")
            users = [user] if user else list(dict.fromkeys(run.user_ids[ln.user] for ln in run.test_lines))
        if user not in users:
            user = users[0]
        store["user"] = user
        user = _bound("user", user, f"User ({len(users):,} shown; type to search)", st.sidebar.selectbox, users)

        domains = [run.domains[ln.domain] for ln in run.lines_of(user)]
        domain, from_url = _wanted("domain")
        if domain not in domains:
            if from_url and domain not in run.domains:
                st.warning(f"Domain {inline_code(domain)} is not a domain of run {inline_code(name)} "
                           f"({', '.join(inline_code(d) for d in run.domains)}).")
            domain = domains[0]
        store["domain"] = domain
        domain = _bound("domain", domain, "Target domain", st.sidebar.radio, domains, horizontal=True,
                        format_func=escape_markdown)  # radio options are markdown
        line = run.line_of(user, domain)

    params = {"run": name} | ({"user": run.user_ids[line.user], "domain": run.domains[line.domain]} if line else {})
    for key in DEPENDENTS:  # only the sidebar's keys: a page's own choices (url_choice) stay in the URL
        if key not in params:
            st.query_params.pop(key, None)
        elif st.query_params.get(key) != params[key]:
            st.query_params[key] = params[key]
    return Selection(run, line)


def url_choice(key: str, label: str, widget, options, default=None, **kwargs):
    """A page's own choice (a space, a slice, a second run) as a widget whose value lives in
    the URL too (`?key=value`), so a pasted link reproduces the view. A valid value named by
    the URL wins; an unknown one gets a warning (as code) and the default. `widget` is a
    streamlit widget taking (label, options, key=..., on_change=...), e.g. st.selectbox,
    st.radio, st.segmented_control; options are compared with the URL as strings."""
    options = list(options)
    names = [str(o) for o in options]
    wkey = f"_url_{key}"
    url = st.query_params.get(key)
    if url is not None and url in names:
        st.session_state[wkey] = options[names.index(url)]
    elif wkey not in st.session_state or st.session_state[wkey] not in options:
        if url is not None:
            st.warning(f"{inline_code(key)} {inline_code(url)} from the link is not one of the choices here; "
                       f"showing {inline_code(str(default if default in options else options[0]))}.")
        st.session_state[wkey] = default if default in options else (options[0] if options else None)

    def changed():  # before the rerun, so the URL agrees with the widget when the page reads it
        value = st.session_state[wkey]
        if value is None:
            st.query_params.pop(key, None)
        else:
            st.query_params[key] = str(value)

    value = widget(label, options, key=wkey, on_change=changed, **kwargs)
    if value is not None and st.query_params.get(key) != str(value):
        st.query_params[key] = str(value)
    return value


@st.cache_data(show_spinner="Comparing the two runs ...", max_entries=16)
def _method_deltas(folder: str, a: str, stamp_a: float, b: str, stamp_b: float, metric: str, seed: int):
    from urllm.app.compare import method_deltas, pair_runs

    return method_deltas(pair_runs(open_run(a), open_run(b)), metric, seed)


def compared_methods(pair, metric: str) -> list[dict]:
    """urllm.app.compare.method_deltas of two runs, computed once per pair of runs and metric."""
    a, b = pair.a.name, pair.b.name
    return _method_deltas(str(artifacts_dir()), a, _stamp(a), b, _stamp(b), metric, pair.a.seed)
