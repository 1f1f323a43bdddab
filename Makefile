# adledger: `make run` starts everything, `make test` proves it. Both do all set-up first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

SERVICES := identity wallet campaign invoicing order_escrow spend_consumer sends
# Services with no database or outbox of their own: the finance console (pages on the services' public APIs).
FRONTENDS := console
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
STACK := deploy/local/stack
PYTEST_ARGS ?=

.PHONY: help setup venv browser screenshot stack-up stack-down stack-status run test test-unit test-integration lint schemas check-schemas k8s kafka-lock bench bench-smoke bench-audit lock clean

help: ## List the targets.
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

setup: venv stack-up browser ## Install everything (Python packages, Kafka jars, PostgreSQL, Java) and start the stack.

venv: $(VENV)/.installed ## Create .venv with the libs, every service, the `adledger` CLI and the ad servers' client installed (editable).

$(VENV)/.installed: libs/pyproject.toml $(foreach s,$(SERVICES) $(FRONTENDS),services/$(s)/pyproject.toml) tools/cli/pyproject.toml clients/python/pyproject.toml \
		requirements-dev.txt requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "adledger needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV) || { echo "error: could not create a virtualenv (on Debian: apt-get install python3-venv)" >&2; exit 1; }
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -c requirements.lock -r requirements-dev.txt \
		-e libs $(foreach s,$(SERVICES) $(FRONTENDS),-e services/$(s)) -e tools/cli -e clients/python
	touch $@

browser: ## Install Debian's chromium and chromium-driver for the console's browser tests (idempotent; no browser download).
	deploy/local/browser

screenshot: venv stack-up browser ## Take the console overview's screenshot into docs/console-overview.png (a browser test on the real stack).
	ADLEDGER_CONSOLE_SCREENSHOT=$(abspath docs/console-overview.png) $(PY) -m pytest tests/integration/console -q -k overview $(PYTEST_ARGS)

stack-up: ## Start Kafka and PostgreSQL (installs what is missing; waits for health).
	$(STACK) start

stack-down: ## Stop Kafka and PostgreSQL.
	$(STACK) stop

stack-status: ## Show whether Kafka and PostgreSQL run, where, and their logs.
	$(STACK) status

run: venv stack-up ## Start the stack and every service in the foreground (Ctrl-C stops all).
	$(PY) deploy/local/run_all.py

test: venv stack-up browser ## Run every test: unit and integration, against the real Kafka and PostgreSQL.
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: venv ## Only the tests that need no broker or database.
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: venv stack-up browser ## Only the tests against the real stack.
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

lint: venv ## Static checks that catch real bugs: undefined names, unused imports, bug-prone patterns; mypy --strict on libs/.
	$(VENV)/bin/ruff check --select F,E9,B --ignore B008 libs services tools clients tests deploy bench
# The shared libraries every service stands on are held to mypy --strict (pyproject.toml [tool.mypy]).
	$(VENV)/bin/mypy libs/adledger_libs libs/adledger_auth libs/adledger_contracts libs/adledger_ledger
# The ad servers' client is held to ruff's full default rules and mypy --strict (it ships py.typed).
	cd clients/python && $(abspath $(VENV))/bin/ruff check . && $(abspath $(VENV))/bin/mypy adledger_client

schemas: venv ## Regenerate schemas/ from the pydantic models and the topic catalogue.
	$(PY) -m adledger_contracts.schemagen schemas
	$(PY) tools/rules_index.py
	$(PY) -m adledger_identity.inject schemas/openapi
	$(PY) -m adledger_wallet.inject schemas/openapi
	$(PY) -m adledger_order_escrow.inject schemas/openapi
	$(PY) -m adledger_campaign.inject schemas/openapi
	$(PY) -m adledger_invoicing.inject schemas/openapi
	$(PY) -m adledger_sends.inject schemas/openapi
	$(PY) deploy/k8s/generate.py

k8s: venv ## Regenerate deploy/k8s's Strimzi resources (KafkaTopics from the catalogue, the Kafka version from deploy/kafka.lock).
	$(PY) deploy/k8s/generate.py

KAFKA_VERSION ?=
kafka-lock: ## Pin Kafka KAFKA_VERSION (default: the pinned one): fetch it, write deploy/kafka.lock's checksums and docker-compose.yml.
	deploy/local/kafka-lock $(KAFKA_VERSION)

check-schemas: venv ## Fail if schemas/ drifted from the models.
	$(PY) -m adledger_contracts.schemagen schemas --check

BENCH_ARGS ?=
bench: venv stack-up ## Benchmark the spend path against the running stack (see docs/performance.md).
	$(PY) bench/spend.py $(BENCH_ARGS)

BENCH_SMOKE_RESULTS ?= $(or $(TMPDIR),/tmp)/adledger-bench-smoke
bench-smoke: venv stack-up ## A small run of the benchmark (CI): every phase, the exact-charge check, the final line.
	$(PY) bench/spend.py --events 5000 --naive-events 100 --accounts 100 --business-centers 10 --partitions 6 \
		--pause-accounts 10 --pause-rate 500 --results $(BENCH_SMOKE_RESULTS) $(BENCH_ARGS)

bench-audit: venv stack-up ## Time `adledger ledger audit` on a generated ledger of a million transfers (docs/performance.md).
	$(PY) bench/ledger_audit.py $(BENCH_ARGS)

lock: venv ## Re-pin requirements.lock from the current .venv.
	{ echo '# Pinned versions of every third-party package (constraints for make venv); refresh with make lock.'; \
	  $(VENV)/bin/pip freeze --exclude-editable | grep -v "^-e"; } > requirements.lock

clean: ## Remove the virtualenv (the stack's data stays in $$ADLEDGER_HOME; see `deploy/local/stack reset`).
	rm -rf $(VENV)
