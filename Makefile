# The README's two commands: `make run` and `make test`. Both set up .venv on first use.
PYTHON ?= $(shell scripts/find-python)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-e2e lint fmt install clean fuzz audit bench bench-quick bench-micro bench-profile

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

# The adversarial fuzz targets with many examples (`make test` runs them briefly).
FUZZ_EXAMPLES ?= 10000
RAW_FUZZ_EXAMPLES ?= 2000
fuzz: install
	SIGWARDEN_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) SIGWARDEN_RAW_FUZZ_EXAMPLES=$(RAW_FUZZ_EXAMPLES) \
		$(BIN)/pytest -q tests/test_adversarial_fuzz.py $(PYTEST_ARGS)

# pip-audit of what .venv holds; see scripts/audit for how an unreachable service is treated.
audit: install
	$(PYTHON) scripts/audit

lint: install
	$(BIN)/ruff check addon tests scripts bench
	$(BIN)/ruff format --check addon tests bench
	$(BIN)/mypy addon/sigwarden

.PHONY: lint-deploy image-test

# The Dockerfile (hadolint), config/ (yamllint) and the Kubernetes example (kustomize, then
# kubernetes-validate --strict): offline, with the tools of the `deploy` extra in .venv.
$(BIN)/.deploy-installed: $(BIN)/.installed
	$(BIN)/pip install --quiet -e '.[dev,deploy]'
	@touch $@

lint-deploy: $(BIN)/.deploy-installed
	BIN=$(BIN) scripts/lint-deploy

# Build the image with buildah on a debootstrapped Debian base and smoke-test it with podman
# (root; installs buildah, podman, runc, debootstrap when missing).
image-test:
	scripts/image-test

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
	rm -rf $(VENV) .venv-audit .pytest_cache .mypy_cache .hypothesis
