# Quick start: `make run` (the whole stack in the foreground) and `make test`.
# Both set everything up on a fresh Debian machine with Python 3.11 (as root):
# system packages with apt-get when missing (nginx, PostgreSQL, Redis, a JDK
# and Maven), the .venv, the Python packages, and Apache Kafka's jars
# (assembled by Maven from deploy/kafka/pom.xml into .tools/kafka/libs).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BUF    := .tools/node_modules/.bin/buf
KAFKA_LIBS  := .tools/kafka/libs
KAFKA_STAMP := $(KAFKA_LIBS)/.assembled
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help setup system-packages run test test-unit lint format proto ghz stripe-mock settings-doc clean ledger dlq payments reconcile seating token demo idle flood eta bench-seating

help:
	@echo "make run | test | test-unit | lint | format | proto | ghz | stripe-mock | settings-doc | setup | clean | ledger | dlq | payments | reconcile | seating | token | demo | idle | flood | eta | bench-seating"

setup: system-packages $(STAMP) $(KAFKA_STAMP)

# nginx, PostgreSQL, Redis, a Java 17+ runtime and Maven are installed only
# when missing.
system-packages:
	@missing=""; \
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
	  || missing="$$missing postgresql"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])' || missing="$$missing openjdk-17-jdk-headless"; \
	command -v mvn >/dev/null 2>&1 || missing="$$missing maven"; \
	command -v docker-compose >/dev/null 2>&1 || missing="$$missing docker-compose"; \
	$(PYTHON) -c "import ensurepip, venv" >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $(SUDO) apt-get install -y -q --no-install-recommends $$missing \
	  || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q --no-install-recommends $$missing; }; \
	fi

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# Apache Kafka's broker: its published jars, resolved by Maven (no jar is kept
# in the repository).
$(KAFKA_STAMP): deploy/kafka/pom.xml
	rm -rf $(KAFKA_LIBS)
	mvn -q -B -Dstyle.color=never -f deploy/kafka/pom.xml dependency:copy-dependencies -Dkafka.libs=$(CURDIR)/$(KAFKA_LIBS)
	@touch $@

# `make run TLS=1`: TLS to nginx and mutual TLS behind it (a CA of its own).
run: setup
	$(if $(TLS),TICKETING_STACK_TLS=$(TLS) )$(BIN)/python -m ticketing_tools.stack

test: setup
	$(BIN)/python -m pytest

test-unit: setup
	$(BIN)/python -m pytest -m "not stack"

$(BUF):
	npm install --prefix .tools --no-save --no-package-lock --silent @bufbuild/buf

# The protos must not break what the last release (its git tag) served.
RELEASE := $(shell git describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null)

lint: setup $(BUF)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BUF) lint
	@if [ -n "$(RELEASE)" ]; then \
		echo "buf breaking --against .git#tag=$(RELEASE)"; \
		$(BUF) breaking --against '.git#tag=$(RELEASE)'; \
	else echo "buf breaking: no release tag in this clone, nothing to compare with"; fi

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Against the running `make run` stack (it writes .ticketing-stack.env), or
# against whatever TICKETING_KAFKA_BOOTSTRAP / TICKETING_POSTGRES_DSN name.
STACK_ENV = set -a; [ -f .ticketing-stack.env ] && . ./.ticketing-stack.env; set +a;

ledger: setup
	@$(STACK_ENV) $(BIN)/ticketing-admin ledger $(ARGS)

dlq: setup
	@$(STACK_ENV) $(BIN)/ticketing-admin dlq $(or $(ARGS),list)

# Stuck payments (ARGS="retry PAYMENT_ID" hands one back to the saga).
payments: setup
	@$(STACK_ENV) $(BIN)/ticketing-admin payments $(ARGS)

# Our payments against the provider's books, the last 24 h unless ARGS says
# (ARGS="--since 2026-03-01T00:00Z --provider stripe").
reconcile: setup
	@$(STACK_ENV) $(BIN)/ticketing-admin payments reconcile $(ARGS)

# Seating plans and seat maps against the running stack:
# make seating ARGS="import plan.json --name Hall --per-user-limit 4" or ARGS="show EVENT_ID".
seating: setup
	@$(STACK_ENV) $(BIN)/ticketing-admin seating $(or $(ARGS),--help)

# A bearer token for the running stack: make token ARGS="--subject alice [--role admin]"
token: setup
	@$(BIN)/ticketing-admin token $(or $(ARGS),--subject alice)

# One subject floods Reserve while another buys at its pace, on a stack of its
# own with the per-subject limit on (BENCHMARKS.md, section 6).
flood: setup
	$(BIN)/python -m ticketing_tools.flood $(ARGS)

# How good the streamed estimated wait is, on a stack of its own
# (BENCHMARKS.md, section 9).
eta: setup
	$(BIN)/python -m ticketing_tools.eta $(ARGS)

# The seed scenario, both designs and the gRPC ceiling (BENCHMARKS.md); against
# the running `make run` stack, or a stack of its own when none runs.
demo: setup
	@$(STACK_ENV) $(BIN)/python -m ticketing_tools.demo $(ARGS)

# Best available at arena size against general admission: the same burst
# of 40,000 buyers on each, in alternating rounds (BENCHMARKS.md, section 10);
# against the running `make run` stack, or a stack of its own when none runs.
bench-seating: setup
	@$(STACK_ENV) $(BIN)/python -m ticketing_tools.seating_bench $(ARGS)

# What an idle stack costs: a stack of its own, settled, then each process's
# CPU over 30 s (BENCHMARKS.md).
idle: setup
	$(BIN)/python -m ticketing_tools.idle $(ARGS)

proto: setup
	$(BIN)/python -m ticketing_tools.protogen

# The pinned ghz (ticketing_tools/ghz.py), built once with Go into .tools/;
# the tests build it the same way when it is missing.
ghz: setup
	@$(BIN)/python -m ticketing_tools.ghz

# The pinned stripe-mock (ticketing_tools/stripe_mock.py), Stripe's API
# stand-in, built once with Go into .tools/ with the fixtures the stack runs
# it with; `TICKETING_STACK_PAYMENT_PROVIDER=stripe make run` builds it too.
stripe-mock: setup
	@$(BIN)/python -m ticketing_tools.stripe_mock

# The README's configuration tables and deploy/env.example, from the settings
# declarations (a test fails when they differ).
settings-doc: setup
	$(BIN)/python -m ticketing_tools.settings_doc --write

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache
