# The few commands people need. `make demo` and `make test` install everything first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
VENDOR := src/cartrecover/entrypoints/http/static/vendor

.PHONY: install browser demo test check unit bench clean

install: $(VENV)/.installed $(VENDOR)/chart.umd.min.js browser

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# The dashboard's charting library, pinned by dashboard/package-lock.json and served by the package (no CDN).
$(VENDOR)/chart.umd.min.js: dashboard/package-lock.json
	npm ci --prefix dashboard --ignore-scripts --no-audit --no-fund
	mkdir -p $(VENDOR)
	cp dashboard/node_modules/chart.js/dist/chart.umd.min.js $(VENDOR)/
	cp dashboard/node_modules/chart.js/LICENSE.md $(VENDOR)/chart.js-LICENSE.md

browser:  ## Debian's Chromium for the dashboard's browser test, installed when missing and we are root
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; fi

demo: install  ## three simulated weeks of a store through a real server: the report next to the truth
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
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis dashboard/node_modules $(VENDOR)
