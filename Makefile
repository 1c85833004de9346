# Kirana's self-describing targets. `make help` lists them.
# Everything installs from the lock file (uv.lock) into .venv with a pinned uv.

PYTHON ?= python3.11
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: help setup setup-dev demo serve test test-fast lint format bench clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Two environments from the one lock file: `setup` installs only what running Kirana needs
# (the demo), `setup-dev` adds the test tools and PySpark. --compile-bytecode: machines that
# set PYTHONDONTWRITEBYTECODE would otherwise compile every import from source in every new
# process (the consumer worker, CLI tests); it is the silent part of an install, so say so.
$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	@echo "==> installing Kirana's runtime dependencies into $(VENV) (uv, from uv.lock)"
	$(UV) sync --frozen --no-dev --inexact --python $(PYTHON)
	@echo "==> compiling bytecode (about a minute on 2 cores, once)"
	$(UV) sync --frozen --no-dev --inexact --compile-bytecode --python $(PYTHON) --quiet
	touch $@

$(VENV)/.synced-dev: $(VENV)/.synced
	@echo "==> installing the test tools and PySpark into $(VENV)"
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	touch $@

# Kirana's own modules, compiled once per run for the same reason (stale files are ignored).
.PHONY: bytecode
bytecode:
	@$(VENV)/bin/python -m compileall -q src >/dev/null

setup: $(VENV)/.synced ## install what running Kirana needs into .venv (locked)

setup-dev: $(VENV)/.synced-dev ## also install the test tools and PySpark

demo: setup bytecode ## start Kirana on the embedded default and load the demo data (http://127.0.0.1:8000)
	$(VENV)/bin/kirana serve --demo

serve: setup ## start Kirana without loading demo data
	$(VENV)/bin/kirana serve

test: setup-dev bytecode ## run the whole test suite (lint included)
	@scripts/ensure-chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

test-fast: setup-dev ## run the tests that need no subprocess or external server
	$(VENV)/bin/pytest -m "not slow and not server"

lint: setup-dev ## ruff check
	$(VENV)/bin/ruff check .

format: setup-dev ## ruff format and fix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: setup ## run the benchmarks (figures go to docs/benchmarks.md by hand)
	$(VENV)/bin/python benchmarks/ingest.py

clean: ## remove the environments and the default data dir
	rm -rf .tools $(VENV) kirana-data
