# Ledgerlink: `make demo` to try it, `make test` to run every test. Needs Python 3.11+ and make.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000
EMULATOR_PORT ?= 8765
DEMO_URL := http://$(HOST):$(PORT)
CHROMIUM ?= /usr/bin/chromium

.PHONY: install demo test chromium qa lint format migrate clean

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

## demo: install, migrate, load demo data, then run the QuickBooks emulator, the worker and the
## server until Ctrl-C. The demo login keeps its password (DEMO_PASSWORD in .env) across starts;
## the last lines say it again, and whether QuickBooks is connected or Connect is to be pressed.
## Ctrl-C reaches the emulator and the worker, which stop themselves (a second signal would
## interrupt the worker's own shutdown); the server, started in the background, ignores it and
## is stopped here. If any of the three stops, the others are stopped too.
demo: migrate
	@mkdir -p run
	@$(BIN)/python -m portal.bootstrap_env
	@login="$$($(BIN)/python manage.py load_demo_data)" || { echo "$$login"; exit 1; }; \
	echo "$$login"; \
	export QBO_ENVIRONMENT=emulator \
	       QBO_EMULATOR_URL=http://$(HOST):$(EMULATOR_PORT) \
	       QBO_REDIRECT_URI=$(DEMO_URL)/integrations/quickbooks/callback/ \
	       QBO_EMULATOR_WEBHOOK_URL=$(DEMO_URL)/integrations/quickbooks/webhooks/; \
	pids=""; \
	stop() { \
	    trap - EXIT INT TERM; \
	    if [ "$$1" = ctrl-c ]; then \
	        kill $$server 2>/dev/null; \
	        for _ in $$(seq 50); do \
	            running=""; for p in $$pids; do kill -0 $$p 2>/dev/null && running=1; done; \
	            [ -z "$$running" ] && break; sleep 0.1; \
	        done; \
	    fi; \
	    kill $$pids 2>/dev/null; wait; echo "Stopped."; \
	}; \
	trap stop EXIT; trap 'stop ctrl-c; exit 0' INT; trap 'stop; exit 0' TERM; \
	$(BIN)/python manage.py qbo_emulator --state-file run/qbo-emulator.json & pids="$$pids $$!"; \
	$(BIN)/python manage.py qcluster & pids="$$pids $$!"; \
	$(BIN)/python manage.py runserver $(HOST):$(PORT) --noreload & server=$$!; pids="$$pids $$!"; \
	for url in $(DEMO_URL)/healthz http://$(HOST):$(EMULATOR_PORT)/_emulator; do \
	    for _ in $$(seq 60); do \
	        $(BIN)/python -c 'import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=2)' \
	            "$$url" 2>/dev/null && break; \
	        for p in $$pids; do \
	            kill -0 $$p 2>/dev/null || { echo "The demo could not start (see above)."; exit 1; }; \
	        done; \
	        sleep 0.5; \
	    done; \
	done; \
	echo; \
	echo "Ledgerlink is running: $(DEMO_URL)/admin/  (Ctrl-C stops it)"; \
	echo "QuickBooks emulator:   http://$(HOST):$(EMULATOR_PORT)  (its consent page opens on Connect)"; \
	echo "$$login" | tail -n 2; \
	wait -n; status=$$?; \
	echo "A demo process stopped (exit status $$status); stopping the others."; \
	exit $$status

## test: install what the tests need (Debian's chromium included) and run the whole suite,
## browser tests too (DATABASE_URL picks the database).
test: install chromium
	$(BIN)/python -m pytest

## chromium: the browser the browser tests drive (Playwright's own download is not used).
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	    echo "Installing chromium (Debian package) for the browser tests"; \
	    sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	    $$sudo apt-get update -qq >/dev/null && \
	    $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi
	@test -x $(CHROMIUM) || { echo "$(CHROMIUM) is missing: apt-get install chromium"; exit 1; }

## qa: the checks CI runs besides the tests.
qa: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles artifacts run
