# plic: see README.md. Every target works from a fresh clone (`make setup` runs first if needed).
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= samples
DATA_ROOT ?=
DATA_ARGS := --data $(DATA) $(if $(DATA_ROOT),--data-root $(DATA_ROOT))
PYTEST_ARGS ?=
STAMP := $(VENV)/.setup-stamp

.PHONY: setup test test-slow lint demo distortions bench clean help

help:
	@echo "make demo         the whole pipeline on the built-in sample images (no network)"
	@echo "make test         setup, ruff and the default test suite (what CI runs)"
	@echo "make test-slow    the slow tests too"
	@echo "make distortions  distorted images for DATA=samples|kodak|... (runs/distortions)"
	@echo "make bench        every benchmark (benchmarks/), tables in runs/bench/"
	@echo "make lint         ruff"
	@echo "make setup        .venv with the project, dev extras and offline weights"

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	@touch $@

lint: setup
	$(PY) -m ruff check .

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

test-slow: setup
	$(PY) -m pytest -m "slow and not gpu and not live and not network" $(PYTEST_ARGS)

demo: setup
	bash scripts/demo.sh $(DATA_ARGS)

distortions: setup
	$(PY) -m distortions $(DATA_ARGS)

bench: setup
	bash scripts/bench.sh

clean:
	rm -rf runs build .pytest_cache .ruff_cache
