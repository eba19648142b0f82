# The few commands people need. `make demo` and `make test` install everything first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test check unit bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: install  ## a generated day of shop traffic through a real server, then the carts it found
	$(BIN)/cartrecover demo

check: install  ## lint, formatting, strict types, import layering
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: check  ## everything CI runs
	$(BIN)/pytest -q

unit: install  ## the fast suites only
	$(BIN)/pytest -q tests/unit tests/contract

bench: install  ## ingest benchmarks (see docs/benchmarks.md)
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
