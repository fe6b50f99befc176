# `make run` and `make test` work on a fresh machine: both create .venv and install first.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export LITELLM_LOCAL_MODEL_COST_MAP := True
export TOKENIZERS_PARALLELISM := false

.PHONY: setup run test lint model verifier policies data notebooks docs docs-serve benchmarks bench bench-proxy bench-load bench-scale bench-local bench-budget bench-cascade bench-sessions bench-decision-log bench-write-ahead bench-smollm2 clean bench-dashboard bench-cache bench-privacy bench-new-model

setup: $(STAMP)

# llama-cpp-python compiles llama.cpp from source. A native build (GGML_NATIVE on) crashed with
# an illegal instruction at its first request on this kind of machine: build for plain x86-64.
$(STAMP): export CMAKE_ARGS := -DGGML_NATIVE=OFF
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# The CPU build of torch, pinned first so nothing pulls a CUDA build.
	$(PY) -m pip install torch==2.13.0
	# The local model's server (version pinned in pyproject.toml). The first build takes about
	# 8 minutes on 2 cores; -v prints each compiler step ([n/193]) so it is visibly moving.
	$(PY) -m pip install -v "$$(grep -o 'llama-cpp-python\[server\]==[0-9.]*' pyproject.toml)"
	$(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

# The OpenAI-compatible proxy on 127.0.0.1:8000; it prints a curl line and an openai snippet first.
run: setup
	$(VENV)/bin/router serve --config config.yaml

# The layer contracts (pyproject.toml, [tool.importlinter]) first, then the whole suite.
test: setup
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check router tests bench scripts notebooks
	$(VENV)/bin/ruff format --check router tests bench scripts notebooks

# Rebuild the routing datasets from ../shared/data and retrain the shipped default scorer.
data: setup
	$(VENV)/bin/router data import routellm ../shared/data/routellm --out data/routing/routellm.jsonl
	$(VENV)/bin/router data import dcrouter ../shared/data/llmrouter_dcrouter --out data/routing/dcrouter.jsonl

# The shipped scorer, on RouteLLM, dcrouter and SmolLM2's profile (joined by id), without 20%
# of the prompts (`make policies` verifies on them). Its design is measured first (CV and
# leave-one-source-out on RouteLLM and dcrouter), printed beside the figures the shipped
# artifact recorded, and refused if worse (FORCE=1 ships it anyway); the figures go to
# bench/results/routing_*.json for BENCHMARKS.md. scripts/build_scorer.py says more.
model: setup
	$(PY) scripts/build_scorer.py $(if $(FORCE),--force)

# The cascade's shipped answer verifier (docs/cascades.md): Mixtral's RouteLLM GSM8K answers and
# SmolLM2's own profiled answers (data/routing/smollm2*.jsonl). Prints CV, leave-one-task-out and
# leave-one-model-out figures beside the shipped verifier's, refuses to replace a better one
# (FORCE=1 does), records bench/results/verifier.json.
verifier: setup
	$(PY) bench/verifier.py $(if $(FORCE),--force)

# Re-tune the shipped policies' thresholds on prompts the calibration scorer did not see; the
# verification table goes to bench/results/policies.json (BENCHMARKS.md, `make benchmarks`).
policies: setup
	$(PY) scripts/calibrate_policies.py --record

# Notebooks: edit notebooks/*.py (jupytext percent format) or the .ipynb in Jupyter, then sync
# the pair; the .ipynb in git carries no outputs (tests/test_notebooks.py checks both).
notebooks: setup
	$(VENV)/bin/jupytext --sync notebooks/*.py
	$(PY) scripts/strip_notebooks.py notebooks/*.ipynb

# The docs site (MkDocs Material) into site/; strict: a broken link or anchor fails the build.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

docs-serve: setup
	$(VENV)/bin/mkdocs serve -a 127.0.0.1:8001

# BENCHMARKS.md from bench/results/*.json alone (every bench target below records its figures
# there through bench/results.py), through the template bench/BENCHMARKS.md.j2.
benchmarks: setup
	$(PY) scripts/render_benchmarks.py

# route() at config.yaml on 1,000 unseen prompts; recorded in bench/results/route.json.
bench: setup
	$(PY) bench/route_latency.py

# Proxy overhead vs the upstream directly and vs LiteLLM's proxy (installs the `bench` extra):
# both proxies with a worker per core, the whole comparison three times; median, spread, load,
# the targets per run; recorded in bench/results/proxy.json.
bench-proxy: setup
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) bench/proxy_overhead.py

# bench-proxy's routed scenario with a dashboard open and refreshing every second, and without
# (alternating rounds): the dashboard must not move the figures beyond their noise.
bench-dashboard: setup
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) bench/dashboard_overhead.py

# 64 clients, half streaming, 60 s against a fast loopback upstream, then with 20% upstream
# failures: failures, p50/p99, RSS growth, decision-log rows (DURATION=10 for a quick look).
DURATION ?= 60
bench-load: setup
	$(PY) bench/load.py --duration $(DURATION)

# Two replicas sharing a throwaway Redis and PostgreSQL, 64 clients (half streaming) for
# DURATION s, RUNS times: Redis killed and restarted, one replica killed -9, PostgreSQL killed
# and restarted, mid-run; decision rows missing for requests that received a byte, failures
# in each outage, state recovery, a breaker seen across replicas. Needs redis-server and
# PostgreSQL's binaries.
RUNS ?= 5
bench-scale: setup
	$(PY) bench/scale.py --duration $(DURATION) --runs $(RUNS)

# The local tier (SmolLM2-135M on llama.cpp): time to first token and tokens/s at 1 and 4
# concurrent streams, directly and through the proxy.
bench-local: setup
	$(PY) bench/local_tier.py

# SmolLM2's profiled accuracy and prompts/min per task; the dcrouter pool with and without it
# as a free tenth model (5-fold CV).
bench-smollm2: setup
	$(PY) bench/smollm2_pool.py

# A new model joins the scorer from 25, 50, 100 and 200 of its profiled rows: its success AUROC
# on prompts nobody trained on (each dcrouter model in turn, and SmolLM2).
bench-new-model: setup
	$(PY) bench/new_model.py

# Added latency of a cascaded request through the proxy: SmolLM2 (llama.cpp) answers first,
# the verifier judges, a loopback upstream stands in for the large model (docs/cascades.md).
bench-cascade: setup
	$(PY) bench/cascade_latency.py

# The budget controller on 10,000 shipped prompts, easy then hard: large share per window
# against the target, and docs/budget_controller.png.
bench-budget: setup
	$(PY) bench/budget.py

# What sticky sessions add to a turn (keying, state, stick), by conversation length.
bench-sessions: setup
	$(PY) bench/session_overhead.py

# The decision log's write path on SQLite and PostgreSQL, and a PostgreSQL outage (buffered,
# then written). Needs PostgreSQL's binaries.
bench-decision-log: setup
	$(PY) bench/decision_log.py

# What write-ahead decision rows add: the spool's append and fsync per row for each fsync
# policy, and per request through the proxy against no spool (docs/reliability.md).
bench-write-ahead: setup
	$(PY) bench/write_ahead.py

# The semantic cache on pairs built from the shipped prompts: hit rate on paraphrases, false-hit
# rate on pairs that differ in one number, name, negation or the question after a long prefix,
# with and without the question guard; lookup latency by cache size (N=50 for a quick look).
N ?= 300
bench-cache: setup
	$(PY) bench/cache.py --n $(N)

# The privacy detectors' precision and recall on data/privacy/labelled.jsonl (hard negatives
# included), and what detection costs by prompt length.
bench-privacy: setup
	$(PY) bench/privacy.py

clean:
	rm -rf $(VENV) .pytest_cache
