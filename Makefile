# Two entry points on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: serve test lint typecheck unit test-versions bench bench-pool bench-http bench-overload \
	bench-processes bench-request-cost clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/poolserver $(APP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

test: lint typecheck unit

# The suite on the other supported interpreters (3.12, 3.13), each in its own venv.
test-versions:
	scripts/test-versions

# Benchmarks run in their own environment, which also holds the peers they compare against.
BENCH_VENV = .venv-bench
$(BENCH_VENV)/.installed: pyproject.toml bench/requirements.txt
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install -q -e . -r bench/requirements.txt
	touch $@

bench: bench-pool bench-request-cost bench-http bench-overload bench-processes

bench-pool: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python bench/pool_overhead.py

# One keep-alive request's cost in one thread, step by step: precise enough for µs changes.
bench-request-cost: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python bench/request_cost.py

# Side by side with the peers; BENCH_ARGS=--quick for a short run.
bench-http: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python bench/http_bench.py $(BENCH_ARGS)

# Open-loop arrivals at 3x capacity, side by side with the peers.
bench-overload: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python bench/overload_bench.py $(BENCH_ARGS)

# A CPU-bound handler on both cores (unpinned): --processes 2 against 1, beside gunicorn -w 2.
bench-processes: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python bench/processes_bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(BENCH_VENV) .venv-3.* build src/*.egg-info .mypy_cache .pytest_cache .ruff_cache .hypothesis
