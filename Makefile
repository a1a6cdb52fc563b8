# tutorstream — the two commands are `make run` and `make test`; the rest serve them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
PYTEST_ARGS ?=

.PHONY: run test deps lock system-deps generate check-generated lint format bench soak eval clean web

# Exactly what requirements/dev.lock says, hash-checked (docs/dependencies.md); `make lock` refreshes the lock.
$(STAMP): requirements/dev.lock scripts/lock.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PYTHON) scripts/lock.py sync $(PY) requirements/dev.lock --editable
	touch $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

deps: $(STAMP) $(NODE_STAMP)

# After changing dependencies in pyproject.toml: keeps every pin that still fits; `make lock UPGRADE=1` takes
# the newest versions the ranges allow.
lock:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PYTHON) scripts/lock.py lock --python $(PY) $(if $(UPGRADE),--upgrade)

system-deps:
	bash scripts/system-deps.sh

generate: deps
	$(PY) scripts/generate.py

check-generated: deps
	$(PY) scripts/generate.py --check

lint: deps
	$(PY) scripts/lock.py check --installed
	node_modules/.bin/buf lint
	node_modules/.bin/buf format --diff --exit-code
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy server clients/python/tutorstream_client
	$(VENV)/bin/lint-imports

format: deps
	node_modules/.bin/buf format -w
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# A temp root of our own: the embedded PostgreSQL runs as an unprivileged user that must traverse it, and
# pytest resets its shared /tmp/pytest-of-$USER root to mode 0700 whenever another session starts.
test: system-deps deps
	$(PY) -m pytest --basetemp=$(CURDIR)/.pytest-tmp $(PYTEST_ARGS)

run: system-deps deps
	bash scripts/run.sh

# The browser demo (type-checked, bundled into build/web); `make run` builds it too.
web: deps
	node clients/web/build.mjs --check

# One table of every benchmark, each measured side by side with its baseline: bench/results/latest.md.
bench: system-deps deps
	$(PY) -m bench $(BENCH)

# Mixed load under faults (Redis restart, upstream 429s and dropped streams); SOAK_SECONDS defaults to 600.
soak: system-deps deps
	$(PY) -m soak --seconds $(or $(SOAK_SECONDS),600)

# Answer quality on the demo course (search hit@3, chat citation accuracy, quiz validity): the offline engine,
# plus the configured model when there is one.
eval: system-deps deps
	$(PY) -m evals $(EVAL_ARGS)

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
