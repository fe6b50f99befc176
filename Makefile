# `make run` and `make test` work on a fresh machine: both create .venv and install first.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export LITELLM_LOCAL_MODEL_COST_MAP := True
export TOKENIZERS_PARALLELISM := false

.PHONY: setup run test lint model data bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# The CPU build of torch, pinned first so nothing pulls a CUDA build.
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

run: setup
	$(VENV)/bin/router models
	$(VENV)/bin/router route "Prove that the square root of 2 is irrational"
	$(VENV)/bin/router route "Write a Python function that merges two sorted lists"
	$(VENV)/bin/router route "What is the capital of Australia?"

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check router tests bench
	$(VENV)/bin/ruff format --check router tests bench

# Rebuild the routing datasets from ../shared/data and retrain the shipped default scorer.
data: setup
	$(VENV)/bin/router data import routellm ../shared/data/routellm --out data/routing/routellm.jsonl
	$(VENV)/bin/router data import dcrouter ../shared/data/llmrouter_dcrouter --out data/routing/dcrouter.jsonl

model: setup
	$(VENV)/bin/router train data/routing/routellm.jsonl data/routing/dcrouter.jsonl --out router/artifacts/default

bench: setup
	$(PY) bench/route_latency.py

clean:
	rm -rf $(VENV) .pytest_cache
