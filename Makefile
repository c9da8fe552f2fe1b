# Everything bootstraps itself: uv (into .tools/), the virtual environment (.venv/), the
# locked dependencies. Needs only python3 (3.11) and access to the package registry.

UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
RUN := $(UV) run --frozen --no-sync

export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 90
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: demo test lint typecheck unit clean

demo: .venv/.synced
	$(RUN) i2v demo

# The one command that runs every check; CI runs exactly this.
test: lint typecheck unit

lint: .venv/.synced
	$(RUN) ruff check .
	$(RUN) ruff format --check .

typecheck: .venv/.synced
	$(RUN) mypy

unit: .venv/.synced
	$(RUN) pytest

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	touch $@

clean:
	rm -rf .venv $(TOOLS) out .pytest_cache .mypy_cache .ruff_cache
