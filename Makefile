# Emploi+ — two commands: `make run` and `make test` (see README.md).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: run test lint format bench install clean-data

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

run: $(STAMP)
	$(PY) -m emploiplus.devstack run

test: $(STAMP)
	$(PY) -m emploiplus.devstack exec -- $(PY) -m pytest $(PYTEST_ARGS)

# Lint needs no database: makemigrations --check only compares models and migrations.
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	DEBUG=1 DB_POOL_MAX_SIZE=0 DATABASE_URL=postgres://lint@127.0.0.1:1/lint REDIS_URL=redis://127.0.0.1:1/0 \
		$(PY) manage.py makemigrations --check --dry-run --skip-checks

format: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

bench: $(STAMP)
	$(PY) -m emploiplus.devstack exec -- $(PY) -m bench $(BENCH_ARGS)

clean-data:
	rm -rf .data
