# Two commands (CONTRACT): `make repro` builds the dataset, `make test` runs the test suite.
# Both first install whatever a fresh Debian/Ubuntu machine lacks: rubberband-cli, chromium
# (the listening page's browser test drives it with Playwright; no browser is downloaded), a .venv,
# torch (pinned, installed first so pip never pulls a CUDA build), then every other package at
# the exact version in requirements.lock, then this package itself. The same versions on every
# machine make the same data: a fresh clone's `make repro` reproduces the committed dvc.lock.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TORCH := torch==2.13.0
LOCK := requirements.lock
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup repro test lint bench lock clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	@command -v rubberband >/dev/null 2>&1 || { \
		echo "installing rubberband-cli"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq rubberband-cli; }
	@[ -x /usr/bin/chromium ] || { \
		echo "installing chromium (the listening page's browser test)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps -e .
	@touch $@

repro: setup
	$(BIN)/dvc repro

test: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports

bench: setup
	$(BIN)/python bench/pipeline.py

# Re-resolve requirements.lock after a change to the dependencies in pyproject.toml (then
# re-run `dvc repro` and commit dvc.lock: other versions may make other data).
lock: setup
	$(BIN)/python -m pip install -q pip-tools
	$(BIN)/pip-compile -q --extra dev --strip-extras --allow-unsafe --no-emit-index-url \
		--no-emit-find-links -o $(LOCK) pyproject.toml
	sed -i 's/^torch==\(.*\)+cpu$$/torch==\1/' $(LOCK)

clean:
	rm -rf $(VENV) .cache
