# The two commands of this project: `make run` and `make test`.
# `make run` installs what running needs (requirements.lock), `make test` adds the test
# tools (requirements-dev.lock); both from the lock files, every file checked against
# its hash. `make lock` regenerates the two lock files from pyproject.toml.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check
# --all-build-deps: setuptools and wheel (pyproject.toml's build-system) are locked too, so
# Tenzo itself is built with them (--no-build-isolation), nothing fetched unpinned.
LOCK := CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --generate-hashes \
	--all-build-deps --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links

.PHONY: run test install install-dev lint browser bench bench-scale lock lock-upgrade clean

$(BIN)/python:
	@echo "==> creating the virtual environment $(VENV)"
	$(PYTHON) -m venv $(VENV)

# One stamp per lock: a changed lock (or pyproject.toml) installs again.
$(VENV)/.installed-runtime: requirements.lock pyproject.toml | $(BIN)/python
	@echo "==> installing the runtime dependencies from requirements.lock (hash-checked)"
	$(PIP) install --require-hashes -r requirements.lock
	@echo "==> installing tenzo itself (editable, no dependencies)"
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.installed-dev: requirements-dev.lock pyproject.toml | $(BIN)/python
	@echo "==> installing the runtime and test dependencies from requirements-dev.lock (hash-checked)"
	$(PIP) install --require-hashes -r requirements-dev.lock
	@echo "==> installing tenzo itself (editable, no dependencies)"
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	touch $@ $(VENV)/.installed-runtime

install: $(VENV)/.installed-runtime

install-dev: $(VENV)/.installed-dev

run: install
	@echo "==> starting tenzo serve"
	$(BIN)/tenzo serve

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy domain contracts services

# The browser tests drive Debian's chromium, never a downloaded browser. Only root can
# install it here; anyone else gets one line, and pytest skips those tests (saying how
# to run them), except under CI=true, where they fail.
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "==> installing Debian's chromium for the browser tests"; \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "==> no chromium: the browser tests will be skipped (as root: apt-get install chromium)"; \
	fi

# PYTEST_ARGS narrows a run, e.g. make test PYTEST_ARGS="tests/unit -q".
test: lint browser
	$(BIN)/pytest $(PYTEST_ARGS)

bench: install-dev
	$(BIN)/python bench/public_api.py

bench-scale: install-dev
	$(BIN)/python bench/scale.py

# Regenerate both lock files from pyproject.toml after changing a dependency there: pins
# stay as they are unless pyproject.toml asks otherwise (`make lock-upgrade` takes the
# newest releases it allows). The dev lock is constrained by the runtime lock, so the two
# agree on every package they share.
lock: install-dev
	$(LOCK) $(LOCK_FLAGS) --output-file requirements.lock pyproject.toml
	$(LOCK) $(LOCK_FLAGS) --extra dev --constraint requirements.lock \
		--output-file requirements-dev.lock pyproject.toml

lock-upgrade:
	$(MAKE) lock LOCK_FLAGS=--upgrade

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
