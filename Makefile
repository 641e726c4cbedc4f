# Two commands for newcomers: `make run` and `make test`. Each bootstraps the virtual environment.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.requirements-installed
PYTEST_ARGS ?=
# Tests run in parallel processes (pytest-xdist), a test file per process at a time; TEST_WORKERS=0 runs them in one.
TEST_WORKERS ?= 4

.PHONY: run test lint clean

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python bin/with_redis.py -- bin/run-local

test: $(STAMP)
	$(BIN)/python bin/with_redis.py -- $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache

# Benchmarks: delivery throughput, latency, isolation (also two paths on one host), retry lateness and memory
# (bench/delivery.py), then the log pages.
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python bin/with_redis.py -- $(BIN)/python bench/delivery.py
	$(BIN)/python bench/log_pages.py
