# One command runner for developers and CI. `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin

.DEFAULT_GOAL := help
.PHONY: help install services run demo test test-fast lint format migrate topology bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: ## create .venv and install the project (only when pyproject.toml changed)
	@scripts/venv.sh

services: ## make sure RabbitMQ and PostgreSQL are running (start or install them if needed)
	@scripts/ensure_services.sh

# Development keys for `make run` and `make demo` unless the environment sets its own.
run demo: export COMMERCE_API_KEYS ?= org_demo=demo-key
run demo: export COMMERCE_ADMIN_KEY ?= demo-admin

run: install services ## run the whole system: topology, migrations, every service
	$(BIN)/commerce run

demo: install ## a scripted checkout against `make run`, printing the event trail and the mail
	$(BIN)/python scripts/demo.py

test: install services ## run every test against the live broker and database
	$(BIN)/pytest

test-fast: install ## the tests that need neither a broker restart nor much time
	$(BIN)/pytest -m "not broker_restart and not postgres_restart"

lint: install ## ruff (lint and format check) and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: install services ## create the database and apply every service's migrations
	$(BIN)/commerce migrate

topology: install services ## declare the RabbitMQ topology
	$(BIN)/commerce topology declare

bench: install services ## run the benchmarks in bench/ (they print figures)
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
