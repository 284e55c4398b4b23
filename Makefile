# The two commands a new user types: `make demo` and `make test`. Both set everything up first
# (virtualenv, Python dependencies, redis-server, Java/Maven for the Kafka jars) and are idempotent.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help setup system-packages demo test lint up down status clean

help:  ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

setup: $(VENV)/.installed system-packages  ## Virtualenv + dependencies + redis-server, Java, Maven.

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# Debian packages the local services need (and headless Chromium for the dashboard's browser
# tests); installed only when missing.
system-packages:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v java >/dev/null || missing="$$missing default-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; \
	fi

demo: setup  ## Start local Kafka + Redis, train a quick model if none, replay live; dashboard on :8050.
	$(BIN)/crmrisk demo --linger 120

test: setup  ## Lint, import contracts, then the whole suite against a real Kafka and Redis.
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/pytest -q

lint:  ## ruff check + format check + import contracts (.importlinter).
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

up: setup  ## Start the local Kafka broker and Redis (idempotent).
	$(BIN)/crmrisk up

down:  ## Stop what `make up` started.
	$(BIN)/crmrisk down

status:  ## Show the local services.
	$(BIN)/crmrisk status

clean: down  ## Remove runtime state (var/) and the virtualenv.
	rm -rf var $(VENV)
