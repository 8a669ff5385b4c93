# Strongroom developer commands. `make help` lists them; each target's `## text` is its help.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Written after a successful install; make re-installs only when the lock or pyproject is newer.
STAMP := $(VENV)/.installed
DEMO_HOME := var
HOST ?= 127.0.0.1
PORT ?= 8443
OPERATOR_PORT ?= 8444
PYTEST_ARGS ?=
BENCH ?= *

.PHONY: help install run test lint typecheck scan check bench docs clean

help: ## Show this list of targets
	@echo "usage: make TARGET"
	@echo
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-zA-Z_-]+:[^#]*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(STAMP) ## Create .venv with the hash-pinned dependencies and strongroom (editable)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

run: install ## Serve a demo deployment in var/ over HTTPS (initialised on first run)
	@if [ ! -e $(DEMO_HOME)/strongroom.toml ]; then \
		$(BIN)/strongroom init --home $(DEMO_HOME) --environment development --demo; \
	fi
	@$(BIN)/python scripts/demo_banner.py $(DEMO_HOME) $(HOST) $(PORT) $(OPERATOR_PORT)
	$(BIN)/strongroom serve --home $(DEMO_HOME) --host $(HOST) --port $(PORT) \
		--operator-port $(OPERATOR_PORT)

test: install ## Run the test suite (with CI=true the PostgreSQL runs are required, not skipped)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install ## ruff check (style, bugs, security rules, banned crypto imports)
	$(BIN)/ruff check .

typecheck: install ## mypy --strict on src/
	$(BIN)/mypy src

scan: install ## bandit security scan of src/
	$(BIN)/bandit --quiet -r src -c pyproject.toml

check: test lint typecheck scan ## Everything CI runs (.ci/run also starts PostgreSQL and Redis)

bench: install ## Run the benchmarks in benchmarks/ (slow; one of them: make bench BENCH=crypto)
	@found=0; for script in benchmarks/$(BENCH)_bench.py; do \
		[ -e "$$script" ] || continue; found=1; \
		echo "== $$script"; $(BIN)/python "$$script"; \
	done; \
	[ "$$found" = 1 ] || { echo "no benchmarks/$(BENCH)_bench.py" >&2; exit 1; }

docs: install ## Regenerate docs/cli.md and docs/settings.md from the CLI and the settings registry
	$(BIN)/python scripts/gen_docs.py

clean: ## Remove .venv, caches and build output (keeps the demo deployment in var/)
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . \( -path ./.git -o -path ./$(DEMO_HOME) \) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
