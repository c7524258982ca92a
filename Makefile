# The two commands of the README: `make demo` and `make test`. Both set up everything they need
# (a virtualenv in .venv with the pinned dependencies) on a fresh machine with python3 >= 3.11.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.arbscan-installed

.PHONY: demo test lint bench clean

$(STAMP): requirements/lock.txt pyproject.toml setup.py feeds/_levels.c
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/lock.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/arbscan demo

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy

test: lint
	$(PY) -m pytest -q

$(VENV)/.arbscan-bench: $(STAMP) requirements/bench.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/bench.txt
	touch $@

bench: $(VENV)/.arbscan-bench
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build feeds/_levels*.so
