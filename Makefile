# The two commands: `make run` (serve on embedded defaults) and `make test` (install and test).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# front-end packages from npm (ECharts, the Mongolian web font): package-lock.json pins them
ASSETS := node_modules/.installed

.PHONY: run demo test lint typecheck unit install-test-deps bench bench-sip model dictionary bench-classifier clean
TIPDM ?= ../shared/data/tipdm

run: $(STAMP) $(ASSETS)
	@bash scripts/install-run-deps.sh
	$(BIN)/hotline serve

# the same, plus demo users, departments and a few work orders (logins are printed)
demo: $(STAMP) $(ASSETS)
	@bash scripts/install-run-deps.sh
	$(BIN)/hotline serve --demo

# pip's own output is long: show one line per package it fetches, and errors in full
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || { echo "make: creating $(VENV) (Python virtual environment)"; $(PYTHON) -m venv $(VENV); }
	@echo "make: installing Python packages into $(VENV) (first time: about 2 minutes) …"
	@set -o pipefail; $(BIN)/pip install --disable-pip-version-check --progress-bar off --upgrade pip 2>&1 \
		| { grep -E '^(ERROR|error)' || true; }
	@set -o pipefail; $(BIN)/pip install --disable-pip-version-check --progress-bar off -e '.[dev]' 2>&1 \
		| { grep --line-buffered -E '^(Collecting|ERROR|error|  ×)' | sed -u -e 's/^Collecting /  获取 /' -e 's/ (from .*//' || true; }
	@echo "make: Python packages installed"
	@touch $@

install-test-deps:
	bash scripts/install-test-deps.sh

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

$(ASSETS): package.json package-lock.json
	@echo "npm ci: installing the front-end packages (ECharts, Noto Sans Mongolian) …"
	npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@

test: $(STAMP) $(ASSETS) install-test-deps lint typecheck unit

bench: $(STAMP)
	$(BIN)/python bench/intake.py --spawn --duration 30

# SIPp with RTP → Kamailio → 80 SIP workers, rising concurrency (about 8 minutes)
bench-sip: $(STAMP) install-test-deps
	bench/sip_load.sh

# rebuild classifier/model/ from the TipDM data; fixed seed: same data → same model and version
model: $(STAMP)
	$(BIN)/hotline classifier train \
		--data $(TIPDM)/messages_tokenized.csv \
		--data $(TIPDM)/messages_raw_sample.csv \
		--taxonomy $(TIPDM)/taxonomy.csv \
		--out classifier/model

# rebuild classifier/data/jieba_words.txt: the words of jieba's dictionary found in the TipDM
# files (jieba_dict.txt, the trimmed dictionary the model loads instead of jieba's full one, is
# built from them and the installed jieba on first use); run `make model` after
dictionary: $(STAMP)
	$(BIN)/python -m classifier dictionary \
		--segmented $(TIPDM)/messages_tokenized.csv \
		--raw $(TIPDM)/messages_raw_sample.csv \
		--raw $(TIPDM)/messages_unlabeled.csv \
		--raw $(TIPDM)/messages_with_votes.csv \
		--raw $(TIPDM)/replies.csv \
		--taxonomy $(TIPDM)/taxonomy.csv \
		--out classifier/data/jieba_words.txt

bench-classifier: $(STAMP)
	$(BIN)/python bench/classifier.py

clean:
	rm -rf $(VENV) node_modules var .pytest_cache .mypy_cache .ruff_cache
