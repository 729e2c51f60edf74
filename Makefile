# Everything a fresh machine needs comes from pyproject.toml into .venv.
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= .pausegate
# Debian's PostgreSQL 15 (postgres_fdw, pgaudit, a second cluster for replication), for the tests of copies
PG15 := /usr/lib/postgresql/15/lib/pgaudit.so

.PHONY: up test test-fast lint bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

## up: set up and run the embedded stack (Temporal, PostgreSQL, reference fleet, chat sink, worker)
up: $(VENV)/.installed
	$(VENV)/bin/pausegate up --data-dir $(DATA)

## test: the whole test suite against the real Temporal dev server and a real PostgreSQL
test: $(VENV)/.installed $(PG15)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest

$(PG15):
	[ -x /usr/lib/postgresql/15/bin/postgres ] && [ -f $@ ] || (apt-get update && apt-get install -y postgresql-15 postgresql-15-pgaudit)

## test-fast: everything but the tests marked slow
test-fast: $(VENV)/.installed
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest -m "not slow"

## lint: ruff and mypy
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

## bench: every benchmark once (at most 30 min, 10 GB of disk), written to docs/benchmarks.md
bench: $(VENV)/.installed
	PATH="$(abspath $(VENV))/bin:$$PATH" PYTHONPATH=. $(PY) bench/run_all.py

clean:
	rm -rf $(VENV) $(DATA)
