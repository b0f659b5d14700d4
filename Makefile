# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint unit system-tools clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

## make run: start Waypost on its embedded defaults (SQLite in ./waypost-data, loopback ports)
run: $(VENV)/.installed
	$(BIN)/waypost serve

## make test: install test extras and system tools, then lint, type-check and run the whole suite
test: $(VENV)/.installed-test system-tools
	$(BIN)/ruff check waypost tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

unit: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check waypost tests bench
	$(BIN)/mypy

system-tools:
	bash scripts/install-system-tools.sh

clean:
	rm -rf $(VENV) waypost-data .pytest_cache .mypy_cache .hypothesis
