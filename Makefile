# Ledgerlink: `make demo` to try it, `make test` to run every test. Needs Python 3.11+ and make.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install demo test qa lint format migrate clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Ledgerlink needs Python 3.11 or newer (found " + sys.version.split()[0] + ")")'
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

.env: | $(STAMP)
	$(BIN)/python -m portal.bootstrap_env

migrate: install .env
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py createcachetable

## demo: install, migrate, load demo data, then run the worker and the server until Ctrl-C.
demo: migrate
	$(BIN)/python manage.py load_demo_data
	@trap 'kill 0' EXIT INT TERM; \
	$(BIN)/python manage.py qcluster & \
	$(BIN)/python manage.py runserver $(HOST):$(PORT) --noreload & \
	sleep 2; echo; echo "Ledgerlink is running: http://$(HOST):$(PORT)/admin/  (Ctrl-C stops it)"; \
	wait

## test: install what the tests need and run the whole suite (DATABASE_URL picks the database).
test: install
	$(BIN)/python -m pytest

## qa: the checks CI runs besides the tests.
qa: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run --settings=tests.settings

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles
