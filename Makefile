# Two commands on a fresh machine: `make run` and `make test`. Both bootstrap their own environment:
# a tools venv with a pinned uv, then `uv sync --frozen` from the committed uv.lock into .venv.
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test lint typecheck pytest bench schema clean env

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(BIN)/milepost: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --python $(PYTHON) --quiet
	@touch $@

env: $(BIN)/milepost

## Start the whole system on an embedded PostgreSQL with a live demo.
run: env
	$(BIN)/milepost demo

## The whole suite: lint, types, then pytest against real PostgreSQL servers (see tests/README.md).
test: env lint typecheck pytest

lint: env
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: env
	$(BIN)/mypy

pytest: env
	$(BIN)/python -m tests.run

bench: env
	$(BIN)/python -m bench

## Regenerate api/schema.graphql from the code.
schema: env
	$(BIN)/milepost schema > api/schema.graphql

clean:
	rm -rf $(TOOLS) $(VENV) .milepost .pytest_cache .mypy_cache .ruff_cache
