# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint unit system-tools clean fuzz

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

# The hot, pure modules compiled with mypyc (scripts/compile.py), rebuilt when one of their
# sources changes. Without a C compiler they are not built and Waypost runs interpreted.
COMPILED_SOURCES := $(shell $(PYTHON) scripts/compile.py --sources)
$(VENV)/.compiled: scripts/compile.py $(COMPILED_SOURCES) | $(VENV)/.installed
	$(BIN)/pip install -q -e '.[compile]'
	@echo "$(BIN)/python scripts/compile.py"
	@$(BIN)/python scripts/compile.py || { $(BIN)/python scripts/compile.py --clean; \
		echo "compiling with mypyc failed: Waypost runs interpreted (scripts/compile.py)"; }
	touch $@

## make run: start Waypost on its embedded defaults (state in ~/.local/state/waypost, or
## /var/lib/waypost as root; loopback ports)
run: $(VENV)/.installed $(VENV)/.compiled
	$(BIN)/waypost serve

## make test: install test extras and system tools, then lint, type-check, check the layering
## (.importlinter) and run the whole suite
test: $(VENV)/.installed-test $(VENV)/.compiled system-tools
	$(BIN)/ruff check waypost tests bench fuzz
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest $(PYTEST_ARGS)

unit: $(VENV)/.installed-test $(VENV)/.compiled
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check waypost tests bench fuzz
	$(BIN)/mypy
	$(BIN)/lint-imports

## make fuzz: atheris (libFuzzer) on each decoder family for FUZZ_TIME seconds apiece, seeded
## from the PP captures; not part of `make test`. The corpus grows in FUZZ_CORPUS (kept out
## of git inside the venv); failing inputs land in $(FUZZ_CORPUS)/crashes/.
FUZZ_TIME ?= 60
FUZZ_CORPUS ?= $(VENV)/fuzz-corpus
FUZZ_HARNESSES := ber p1 ipm osi_stack smtp
fuzz: $(VENV)/.installed-test
	$(BIN)/pip install -q -e '.[fuzz]' || echo "atheris did not install: the harnesses use their plain-random driver"
	$(BIN)/python fuzz/seeds.py $(FUZZ_CORPUS)
	mkdir -p $(FUZZ_CORPUS)/crashes
	set -e; for h in $(FUZZ_HARNESSES); do \
		echo "== fuzz_$$h ($(FUZZ_TIME)s)"; \
		$(BIN)/python fuzz/fuzz_$$h.py -max_total_time=$(FUZZ_TIME) -rss_limit_mb=2048 \
			-artifact_prefix=$(FUZZ_CORPUS)/crashes/ $(FUZZ_CORPUS)/$$h; \
	done

system-tools:
	bash scripts/install-system-tools.sh

clean:
	-$(PYTHON) scripts/compile.py --clean
	rm -rf $(VENV) .pytest_cache .mypy_cache .hypothesis
