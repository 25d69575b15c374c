"""URLLM Studio: `streamlit run app.py` (or `make demo`). Reads the runs train.py wrote
under artifacts/ (URLLM_ARTIFACTS elsewhere); never trains.

This file is the router: one menu entry per pages/N_Name.py, in N order, titled by its
name ("2_Sequence_graph.py" -> "Sequence graph"); pages/0_Home.py is the landing page at
"/". A page's URL path is its name ("/Generation"), so links like
`Generation?run=demo&user=42&domain=heart` open a page on a user."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).resolve().parent / "pages"


def page_files() -> list[tuple[int, str, Path]]:
    """(number, name, file) of every pages/N_Name.py, in menu order."""
    found = []
    for file in PAGES.glob("*.py"):
        number, _, name = file.stem.partition("_")
        if number.isdigit() and name:
            found.append((int(number), name, file))
    return sorted(found)


st.set_page_config(page_title="URLLM Studio", layout="wide")
menu = [st.Page(f"pages/{file.name}", title=name.replace("_", " "), url_path=name, default=number == 0)
        for number, name, file in page_files()]
st.navigation(menu).run()
