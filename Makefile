# Two commands (CONTRACT): `make repro` builds the dataset, `make test` runs the test suite.
# Both first install whatever a fresh Debian/Ubuntu machine lacks: rubberband-cli, a .venv,
# torch (pinned, installed first so pip never pulls a CUDA build), then this package.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TORCH := torch==2.13.0
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup repro test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v rubberband >/dev/null 2>&1 || { \
		echo "installing rubberband-cli"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq rubberband-cli; }
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

repro: setup
	$(BIN)/dvc repro

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python bench/pipeline.py

clean:
	rm -rf $(VENV) .cache
