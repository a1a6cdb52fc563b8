# tutorstream — the two commands are `make run` and `make test`; the rest serve them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
PYTEST_ARGS ?=

.PHONY: run test deps system-deps generate check-generated lint format bench soak eval clean web

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned: the CPU build of exactly this version is what this machine provides.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	# `npm ci` of npm 11 rejects this lock file over other platforms' optional packages; `install --no-save`
	# installs the same pinned versions and leaves package-lock.json untouched.
	npm install --no-save --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

deps: $(STAMP) $(NODE_STAMP)

system-deps:
	bash scripts/system-deps.sh

generate: deps
	$(PY) scripts/generate.py

check-generated: deps
	$(PY) scripts/generate.py --check

lint: deps
	node_modules/.bin/buf lint
	node_modules/.bin/buf format --diff --exit-code
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy server clients/python/tutorstream_client

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

# One table of every benchmark, each measured side by side with its baseline: bench/results/latest.md + README.
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
