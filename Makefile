# serval — the two commands a new machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.serval-installed

.PHONY: setup run test test-fast lint typecheck bench clean services

setup: $(STAMP)

$(STAMP): pyproject.toml
	bash scripts/setup-venv.sh "$(PYTHON)" "$(VENV)"
	touch $(STAMP)

run: setup
	$(PY) -m serval.apps.many_models_demo

services:
	bash scripts/ensure-services.sh

test: setup services
	$(PY) -m pytest -q -p no:cacheprovider

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: setup
	$(VENV)/bin/ruff check serval tests benchmarks examples
	$(VENV)/bin/mypy

bench: setup
	$(PY) benchmarks/http_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
