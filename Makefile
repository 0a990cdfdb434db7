# LeadFlow developer commands. `make up` then `make demo`; `make down` when done.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv: on PATH, else where `bootstrap` installed it (pip --user, or a private venv in .tools/).
# Recursive (=) on purpose: re-evaluated after `bootstrap` has installed it.
UV = $(or $(shell command -v uv 2>/dev/null),$(wildcard $(HOME)/.local/bin/uv),$(wildcard .tools/uv/bin/uv),uv)
# helm for the chart's checks (tests/deploy/test_helm_chart.py), built from source by `go install`
# into .tools/bin (git-ignored): no release download, one pinned version.
HELM_VERSION := v4.3.2
GO = $(or $(shell command -v go 2>/dev/null),$(wildcard /usr/local/go/bin/go),go)
APT_GET := DEBIAN_FRONTEND=noninteractive apt-get -qq -o=Dpkg::Use-Pty=0
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: help install-uv bootstrap deps deps-system helm up down status logs demo lint test bench

help:
	@echo "make up      install Python deps, start Kafka + PostgreSQL + the five services (idempotent)"
	@echo "make demo    post sample form fills and print each lead's journey, then one lead going cold -> nurture -> MQL -> rep"
	@echo "make status  what runs where;  make logs  tails of every log (ARGS='-f capture' to follow)"
	@echo "make down    stop everything make up started"
	@echo "make test    lint + unit, integration and e2e tests on real Kafka and PostgreSQL"
	@echo "make bench   floors + pipeline at 25..400 leads/s on 1M pre-filled leads, ~20 min: table, .bench/bench-*.json and .png (ARGS='--help')"

# uv is installed by a target of its own: make expands a recipe just before running it, so a
# recipe that installs uv cannot also use $(UV) found in the same expansion.
bootstrap: install-uv
	$(UV) sync --all-packages --locked --quiet

install-uv:
	@if ! command -v uv >/dev/null 2>&1 && [ ! -x "$(HOME)/.local/bin/uv" ] && [ ! -x .tools/uv/bin/uv ]; then \
		echo "installing uv"; \
		python3 -m pip install --quiet --user uv 2>/dev/null \
		|| { python3 -m venv .tools/uv && .tools/uv/bin/pip install --quiet uv; }; \
	fi

# System packages and tools the test suite needs; each is installed only when missing.
deps: deps-system helm

deps-system:
	@missing=""; \
	command -v java >/dev/null 2>&1 || missing="$$missing default-jre-headless"; \
	command -v mvn >/dev/null 2>&1 || missing="$$missing maven"; \
	ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v prometheus-alertmanager >/dev/null 2>&1 || missing="$$missing prometheus-alertmanager"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	[ -x .tools/bin/helm ] || command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ] || missing="$$missing golang-go"; \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:$$missing"; \
		$(SUDO) $(APT_GET) update && $(SUDO) $(APT_GET) install -y --no-install-recommends $$missing >/dev/null; \
	fi

# Once, about 11 minutes on 2 busy cores (20 s of module download, the rest compiling helm and its
# Kubernetes libraries); a no-op afterwards.
helm: deps-system
	@if ! $(GO) version -m .tools/bin/helm 2>/dev/null | grep -qP '^\tmod\thelm.sh/helm/v4\t$(HELM_VERSION)\t'; then \
		echo "installing helm $(HELM_VERSION) into .tools/bin (go install)"; \
		GOBIN="$(CURDIR)/.tools/bin" $(GO) install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION); \
	fi

up: bootstrap
	$(UV) run python -m leadflow_stack up

down:
	$(UV) run python -m leadflow_stack down

status:
	$(UV) run python -m leadflow_stack status

logs:
	$(UV) run python -m leadflow_stack logs $(ARGS)

demo:
	$(UV) run python -m leadflow_stack demo

lint:
	$(UV) run ruff check .
	$(UV) run mypy libs services bench tests

# Two independent pytest sessions side by side, each with its own Kafka and PostgreSQL: the end-to-end
# tests (the longest) beside the libraries' and services' own, which the rest of tests/ (deploy, release,
# API documents) follows. The end-to-end output comes last; the target fails if any run fails. Each prints
# its slowest tests, to watch the 30-minute budget.
test: bootstrap deps lint
	@log=$$(mktemp); \
	UV=$(UV) $(UV) run pytest tests/e2e --durations=15 > "$$log" 2>&1 & cross=$$!; \
	UV=$(UV) $(UV) run pytest libs services bench --durations=15; own=$$?; \
	UV=$(UV) $(UV) run pytest tests --ignore=tests/e2e --durations=10; after=$$?; \
	wait $$cross; cross_rc=$$?; \
	echo "===== pytest tests/e2e ====="; cat "$$log"; rm -f "$$log"; \
	echo "make test: libs/services/bench exit $$own, tests/ but e2e exit $$after, tests/e2e exit $$cross_rc"; \
	exit $$(( own != 0 || after != 0 || cross_rc != 0 ))

bench: bootstrap
	$(UV) run python -m bench $(ARGS)
