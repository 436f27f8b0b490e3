# The two commands of the README: `make up` (the dev stack) and `make test`;
# `make preview STACK=S` and `make up STACK=S` run the engine with the policy
# config `rollout stage` wrote for the stack (scripts/up).
# Each installs whatever is missing first: the virtualenv and Python packages,
# and Debian's prometheus and prometheus-alertmanager for the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
STACK ?= dev
# The project's engine wrappers (tools/bin/pulumi and the plugins it runs) come
# first, so `make` targets and the tests run the pinned engine.
export PATH := $(CURDIR)/tools/bin:$(PATH)

.PHONY: up preview test deps tools check render bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@rm -f $(VENV)/.installed-*
	@touch $@

# The project's own modules are compiled once here, as pip compiles what it
# installs: every engine run (`pulumi preview`, `pulumi up`, the policy pack)
# imports them in fresh processes, which otherwise compile them again each
# time wherever PYTHONDONTWRITEBYTECODE is set. Up-to-date files are skipped.
COMPILED := rollout components alerts dashboards policies benchmarks __main__.py
deps: $(STAMP)
	@$(BIN)/python -m compileall -q -j 0 $(COMPILED) > /dev/null

tools:
	@scripts/install-tools

up: deps
	@scripts/up $(STACK)

preview: deps
	@scripts/up --preview $(STACK)

# The whole suite, in parallel (pytest-xdist): PYTEST_WORKERS processes, each
# test module kept on one of them (--dist loadfile), so a module's shared
# fixture (a Prometheus, an engine project, the test cluster) is set up once;
# the longest modules are sent first, in the order tests/conftest.py gives them
# from tests/durations.json (--no-loadscope-reorder keeps that order). Most of
# the suite waits on real servers (an alert's hold, a scrape, an evaluation)
# rather than computing, so the default is three workers per processor (at
# most 16); PYTEST_ARGS adds options (a -k, a file, -x); PYTEST_WORKERS=0 runs
# in one process.
PYTEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n * 3 > 16 ? 16 : n * 3 )))
# The suite starts hundreds of Python processes over the same modules: it keeps
# their bytecode (and pytest its rewritten test modules) even where
# PYTHONDONTWRITEBYTECODE is set; git ignores every __pycache__.
test: deps tools
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

check: deps
	$(BIN)/rollout check --stack $(STACK)

render: deps
	$(BIN)/rollout render --stack $(STACK) --out build/$(STACK)/rendered

bench: deps tools
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf build .pytest_cache
