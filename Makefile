# The few commands people use. Everything runs from the project's own venv (.venv).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install engine dev test test-fast lint fmt migrate bench-engine clean

install: $(STAMP) engine

$(STAMP): pyproject.toml requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e . -r requirements-dev.txt
	touch $(STAMP)

engine: $(STAMP)         ## compile the engine's book with mypyc (needs gcc; no-op when up to date)
ifeq ($(ENGINE_PURE),1)
	@echo "engine: ENGINE_PURE=1, not compiling (the pure-Python engine will run)"
else
	ENGINE_PURE=1 $(PY) -m matcher.engine.compiled.build
endif

dev: install            ## the whole exchange on 127.0.0.1:8000; Ctrl-C stops it
	$(VENV)/bin/exchange dev

test: install           ## every test, against real Postgres, Redis and SQS (started if missing)
	$(PY) -m pytest

test-fast: install      ## unit tests only (no services)
	$(PY) -m pytest tests/unit -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy chalicelib ops app.py matcher feed --ignore-missing-imports

fmt: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

migrate: install        ## apply migrations to $$DATABASE_URL (default: local) and seed the catalog
	$(VENV)/bin/exchange migrate

bench-engine: install
	$(PY) benchmarks/engine.py

clean:
	rm -rf $(VENV) .dev .pytest_cache .ruff_cache .hypothesis
