# The README's two commands: `make run` and `make test`. Both set up .venv on first use.
PYTHON ?= $(shell scripts/find-python)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-e2e lint fmt install clean bench bench-quick bench-micro bench-profile

$(BIN)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "no Python >= 3.12 found" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/.installed

run: install
	scripts/run-demo

test: install
	$(BIN)/pytest -q $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check addon tests scripts bench
	$(BIN)/ruff format --check addon tests bench
	$(BIN)/mypy addon/sigwarden

fmt: install
	$(BIN)/ruff format addon tests bench
	$(BIN)/ruff check --fix addon tests bench

# Benchmarks (BENCHMARKS.md). `make bench` installs nginx and wrk with apt-get when missing.
$(BIN)/.bench-installed: $(BIN)/.installed
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	@touch $@

bench: $(BIN)/.bench-installed
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-quick: $(BIN)/.bench-installed
	$(BIN)/python -m bench --quick $(BENCH_ARGS)

bench-micro: install
	$(BIN)/python -m bench.micro $(BENCH_ARGS)

bench-profile: install
	$(BIN)/python -m bench.profile $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .hypothesis
