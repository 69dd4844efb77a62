# The few commands people use. Everything runs from the project's own venv (.venv).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install dev test test-fast lint fmt migrate bench-engine clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e . -r requirements-dev.txt
	touch $(STAMP)

dev: install            ## the whole exchange on 127.0.0.1:8000; Ctrl-C stops it
	$(VENV)/bin/exchange dev

test: install           ## every test, against real Postgres, Redis and SQS (started if missing)
	$(PY) -m pytest

test-fast: install      ## unit tests only (no services)
	$(PY) -m pytest tests/unit -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy chalicelib ops app.py --ignore-missing-imports

fmt: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

migrate: install        ## apply migrations to $$DATABASE_URL (default: local) and seed the catalog
	$(VENV)/bin/exchange migrate

bench-engine: install
	$(PY) benchmarks/engine.py

clean:
	rm -rf $(VENV) .dev .pytest_cache .ruff_cache .hypothesis
