# One entry point for set-up, running and testing; see README.md.
SHELL := /bin/bash
UV_VERSION := 0.13.9
export UV_PYTHON_DOWNLOADS := never
export UV_LINK_MODE := copy
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RUN := $(UV) run --frozen

.PHONY: help setup run test lint typecheck unit bench services wheel clean

help:
	@echo "make run    - set up and run the main job"
	@echo "make test   - set up, lint, type-check and run every test"
	@echo "make bench  - run the benchmarks and print the figures"
	@echo "make wheel  - build dist/ for an install: the wheel and its constraints (docs/operations.md)"

# Installs uv from PyPI if missing, then the locked dependencies (with the optional Spark
# runner, which the tests drive) into .venv.
setup:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	@$(UV) sync --frozen --quiet --extra spark --compile-bytecode
	@# Bytecode compiled once here: with PYTHONDONTWRITEBYTECODE set, every process (servers,
	@# the command, pool and Spark workers) would otherwise recompile every module it imports.
	@$(UV) run --frozen python -m compileall -q -j 0 src

# Starts the clinician's page and services on 127.0.0.1:8000 with synthetic demo patients.
run: setup
	$(RUN) myoguide serve --demo --host 127.0.0.1 --port 8000

lint: setup
	$(RUN) ruff check src tests bench
	$(RUN) ruff format --check src tests bench
	$(RUN) lint-imports

typecheck: setup
	$(RUN) mypy

# What the tests drive for real, installed one after another before the test processes start
# (two pytest workers must not race each other for apt's lock on a clean machine).
# The Spark cluster test's executors get a Python of their own (var/spark-executor), built from
# uv.lock's pins with the driver's Python: hence setup first.
services: setup
	@bash scripts/postgres-test.sh install
	@bash scripts/chromium.sh
	@bash scripts/java.sh
	@bash scripts/spark-executor-env.sh >/dev/null
	@bash scripts/axe.sh
	@bash scripts/smart-oauth.sh

# Two worker processes on the two cores; a file's tests stay on one worker, so each worker
# starts at most one browser, one PostgreSQL and (for the batch tests) one Spark session.
LOG_CHECK := tests/test_zz_logs.py::test_no_patient_data_in_the_logs_of_the_suite
unit: setup services
	@rm -rf var/test-logs && mkdir -p var/test-logs
	MYOGUIDE_TEST_LOG_DIR=$(CURDIR)/var/test-logs $(RUN) pytest -n 2 --dist loadfile --deselect $(LOG_CHECK)
	MYOGUIDE_TEST_LOG_DIR=$(CURDIR)/var/test-logs $(RUN) pytest $(LOG_CHECK)

test: lint typecheck unit

# Every benchmark, each writing its own section of bench/RESULTS.md.
bench: setup services
	$(RUN) python bench/run.py
	$(RUN) python bench/web_pages.py
	$(RUN) python bench/bigchart.py
	$(RUN) python bench/audit.py

# The release an administrator installs: the wheel, and uv.lock's versions as pip constraints.
wheel: setup
	$(UV) build --wheel --out-dir dist
	$(UV) export --frozen --no-hashes --no-emit-project --no-dev --quiet > dist/constraints.txt

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache .hypothesis
