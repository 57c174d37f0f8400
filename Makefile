# UQCrowd-Log: every entry point a developer or CI uses. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
BIN       := $(VENV)/bin
ROLE      ?=
SCENARIO  ?=
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help venv deps molecule-host lint docs docs-site test-unit test-service molecule test bench bench-study bench-export bench-dashboard bench-fsync bench-replica bench-edge password-hash demo demo-down

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(BIN)/.installed: requirements-dev.txt files/requirements.txt files/requirements-parquet.txt files/pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps --editable files  # the service's package (its dependencies: pinned above)
	touch $@

venv: $(BIN)/.installed ## Python tooling (pinned) in .venv

deps: ## Debian packages and the Elasticsearch test archive the tests use (idempotent)
	scripts/install-test-deps.sh
	scripts/fetch-elasticsearch.sh >/dev/null
	ES_VERSION=8.18.0 scripts/fetch-elasticsearch.sh >/dev/null  # the multihost cluster's rolling upgrade starts on it

molecule-host: ## podman, host fixes and the Debian 12 and 13 systemd images (idempotent)
	scripts/prepare-molecule-host.sh

lint: venv ## ruff, yamllint, ansible-lint (production profile), the docs' drift checks
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/yamllint --strict .
	$(BIN)/ansible-lint
	$(BIN)/python scripts/docs_reference.py --check

docs: venv ## regenerate the reference pages, then build the documentation site (strict) into .cache/site
	$(BIN)/python scripts/docs_reference.py
	$(MAKE) docs-site

docs-site: venv ## build the documentation site as it is (strict: a broken link or anchor fails)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

test-unit: venv ## the pure tests of the service's code (no server, seconds)
	$(BIN)/pytest tests/unit

# Two workers (each its own Redis and Elasticsearch): much of these tests' time is waiting on a fault
# held for seconds (a page offline, a server answering 503), which the other worker fills.
test-service: venv deps ## the service's tests against real Redis, Elasticsearch, HAProxy and Chromium
	$(BIN)/pytest -n 2 --dist loadfile tests/service

molecule: venv deps molecule-host ## Molecule scenarios (ROLE=name or SCENARIO=name to narrow)
	scripts/molecule.sh "$(ROLE)" "$(SCENARIO)"

test: lint docs-site test-unit test-service molecule ## everything CI runs

bench: venv deps ## throughput and latency of the stack against the original design, then the export
	$(BIN)/python -m bench

bench-export: venv deps ## only the researcher's export of 1,000,000 events: rate and peak memory
	$(BIN)/python -m bench export

bench-dashboard: venv deps ## only the dashboard on 1,000,000 events: its pages, and (b) with five of them open
	$(BIN)/python -m bench dashboard

bench-study: venv deps ## only the study: how many workers this stack and the original design hold at once
	$(BIN)/python -m bench study

bench-fsync: venv deps ## only Redis's appendfsync always against everysec: (b), (c), p99 at half rate
	$(BIN)/python -m bench fsync

bench-replica: venv deps ## only a 202 once a replica holds the insert against the primary alone: (b), (c), p99 at half rate
	$(BIN)/python -m bench replica

bench-edge: venv deps ## only HAProxy with its protections against without: its CPU per request, interleaved
	$(BIN)/python -m bench edge

password-hash: venv ## a dashboard login's password hash for the vault (asks the password twice)
	@$(BIN)/uqcrowd-log password-hash

demo: venv molecule-host ## the whole stack in the container uqcrowd-log-demo, HAProxy on 127.0.0.1:8080
	scripts/demo.sh up

demo-down: ## remove the demo container
	scripts/demo.sh down
