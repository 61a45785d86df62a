# Learning Environments: set-up, book, tests.
#
#   make book    create .venv if missing, install learnenv[dev], build the book
#                (every chapter executed in the quick preset, unless the tests
#                already did for the same code; warnings fail it)
#   make test    same set-up, then run the tests: first the book build (every
#                chapter executed once) and what it shows, then the rest in parallel
#   make sync    regenerate each chapter's .ipynb twin, Colab set-up cell and student
#                notebook (student/NAME.ipynb), and the instructor guide's tables
#   make clean   remove build outputs (keeps .venv)
#
# VENV=/path/to/venv uses another virtual environment (the CI does this).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

# Resolved now, before PATH is changed below.
DEFAULT_PYTHON := $(shell command -v python3.11 2>/dev/null || command -v python3)
PYTHON ?= $(DEFAULT_PYTHON)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.learnenv-installed
LEARNENV_PRESET ?= quick
PYTEST_ARGS ?=
# The tests run in two steps. First the book build and what it shows
# (tests/test_notebooks.py): every chapter executes once, alone on the machine, so
# the times checked against the chapters' caps are a reader's times. Then every
# other test, in TEST_WORKERS processes (pytest-xdist), a module per process so
# that module fixtures are computed once. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2

# Kernels started by the book build and the tests must be this venv's Python.
export PATH := $(abspath $(BIN)):$(PATH)
export LEARNENV_PRESET
export PYTHONUNBUFFERED := 1

.PHONY: venv book test sync sync-check clean distclean

venv: $(STAMP)

# Reuses an existing venv; reinstalls only when pyproject.toml changes.
$(STAMP): pyproject.toml
	@if [ ! -x "$(BIN)/python" ]; then \
	  echo "Creating $(VENV) with $(PYTHON)"; \
	  "$(PYTHON)" -m venv "$(VENV)"; \
	fi
	"$(BIN)/python" -m pip install -e ".[dev]"
	touch "$(STAMP)"

book: venv
	"$(BIN)/python" scripts/build_book.py

test: venv
	"$(BIN)/python" -m pytest $(PYTEST_ARGS) tests/test_notebooks.py
	"$(BIN)/python" -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS) --ignore=tests/test_notebooks.py

sync: venv
	"$(BIN)/python" scripts/sync_notebooks.py

sync-check: venv
	"$(BIN)/python" scripts/sync_notebooks.py --check

clean:
	rm -rf _build .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -print0 | xargs -0 rm -rf

distclean: clean
	rm -rf "$(VENV)"
