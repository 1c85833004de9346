# Kirana's self-describing targets. `make help` lists them.
# Everything installs from the lock file (uv.lock) into .venv with a pinned uv.

PYTHON ?= python3.11
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: help setup demo serve test test-fast lint format bench clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# --compile-bytecode: machines that set PYTHONDONTWRITEBYTECODE would otherwise compile
# every import from source in every new process (the consumer worker, CLI tests).
$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	touch $@

# Kirana's own modules, compiled once per run for the same reason (stale files are ignored).
.PHONY: bytecode
bytecode:
	@$(VENV)/bin/python -m compileall -q src >/dev/null

setup: $(VENV)/.synced ## install the locked dependencies into .venv

demo: setup bytecode ## start Kirana on the embedded default and load the demo data (http://127.0.0.1:8000)
	$(VENV)/bin/kirana serve --demo

serve: setup ## start Kirana without loading demo data
	$(VENV)/bin/kirana serve

test: setup bytecode ## run the whole test suite (lint included)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

test-fast: setup ## run the tests that need no subprocess or external server
	$(VENV)/bin/pytest -m "not slow and not server"

lint: setup ## ruff check
	$(VENV)/bin/ruff check .

format: setup ## ruff format and fix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: setup ## run the benchmarks (figures go to docs/benchmarks.md by hand)
	$(VENV)/bin/python benchmarks/ingest.py

clean: ## remove the environments and the default data dir
	rm -rf .tools $(VENV) kirana-data
