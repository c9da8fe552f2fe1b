# Everything bootstraps itself: uv (into .tools/), the virtual environment (.venv/), the
# locked dependencies. Needs only python3 (3.11) and access to the package registry (and, for
# the browser tests, Debian's chromium: `make test` installs it with apt when run as root).

UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
RUN := $(UV) run --frozen --no-sync

export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 90
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: models demo demo-compare test lint typecheck unit chromium strace bench deploy worker audit clean

demo: .venv/.synced
	$(RUN) i2v demo

# The sample on three models side by side: out/demo-compare/runs/<run>/compare.html.
COMPARE_MODELS ?= alibaba/wan2.5-i2v-preview,alibaba/wan2.2-i2v-plus,alibaba/wan-2-6-i2v
demo-compare: .venv/.synced
	$(RUN) i2v demo --dest out/demo-compare --models $(COMPARE_MODELS)

# The one command that runs every check; CI runs exactly this.
test: lint typecheck unit

lint: .venv/.synced
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) lint-imports --no-cache

typecheck: .venv/.synced
	$(RUN) mypy

unit: .venv/.synced chromium strace
	$(RUN) pytest -n 2 --dist loadfile

# The report page's browser tests drive Debian's Chromium with Playwright (Playwright's own
# browser download needs the internet). Installed with apt when missing, where that is possible
# (root, apt-get); elsewhere this only warns, and the browser tests fail saying how to install it.
CHROMIUM := /usr/bin/chromium

chromium:
	@if [ -x $(CHROMIUM) ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium with apt-get"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium || \
		echo "warning: apt-get could not install chromium: the browser tests will fail" >&2; \
	else \
		echo "warning: $(CHROMIUM) is missing and installing it needs root and apt-get:" \
			"the browser tests will fail (as root: apt-get update && apt-get install -y chromium)" >&2; \
	fi

# The storage tests watch a write's system calls with strace (that the folder is flushed after
# a rename), and mount small tmpfs disks to fill (both need root on Linux, where they run).
strace:
	@if command -v strace >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing strace with apt-get"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q strace || \
		echo "warning: apt-get could not install strace: a storage test will fail" >&2; \
	else \
		echo "warning: strace is missing and installing it needs root and apt-get:" \
			"a storage test will fail (as root: apt-get update && apt-get install -y strace)" >&2; \
	fi

# Prefect server set-up (needs PREFECT_API_URL): the work pool, the shared concurrency limit
# and every deployment in prefect.yaml. Settings: deployments/deploy.py. Then, on each
# machine, `make worker` (deployments/worker.sh). See README "Scaling out".
deploy: .venv/.synced
	$(RUN) python deployments/deploy.py

worker: .venv/.synced
	deployments/worker.sh

# Benchmarks (figures, not pass/fail; see bench/README.md). Full size takes a long time:
# `make bench BENCH_ARGS=--quick` is a smoke run. MAKESPAN_ARGS / SCALE_ARGS go to one script
# each (e.g. MAKESPAN_ARGS="--scenario S3", SCALE_ARGS="--rows 20000"); PIPELINE_ARGS go to
# `i2v run` (e.g. PIPELINE_ARGS="--rows-per-shard 500"). JSON figures land in out/bench/.
BENCH_ARGS ?=
MAKESPAN_ARGS ?=
SCALE_ARGS ?=
PIPELINE_ARGS ?=
BENCH_PASS = $(if $(strip $(PIPELINE_ARGS)),-- $(PIPELINE_ARGS))

bench: .venv/.synced
	$(RUN) python -m bench.makespan --out out/bench/makespan.json $(BENCH_ARGS) $(MAKESPAN_ARGS) $(BENCH_PASS)
	$(RUN) python -m bench.scale --out out/bench/scale.json $(BENCH_ARGS) $(SCALE_ARGS) $(BENCH_PASS)
	$(RUN) python -m bench.transfer --out out/bench/transfer.json $(BENCH_ARGS)

# Known vulnerabilities in the locked dependencies. Needs pypi.org's JSON API (or
# `AUDIT_ARGS="-s osv"` and api.osv.dev), so it is not part of `make test`.
AUDIT_ARGS ?=
audit: $(UV)
	$(UV) export --frozen --format requirements-txt --no-hashes --no-emit-project > $(TOOLS)/requirements.txt
	$(UV) tool run pip-audit -r $(TOOLS)/requirements.txt --no-deps --disable-pip $(AUDIT_ARGS)

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

# Bytecode compiled at install: every run starts several Python processes (the flow, Prefect's
# server, workers), and where PYTHONDONTWRITEBYTECODE is set each would compile its imports again.
.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode
	touch $@

clean:
	rm -rf .venv $(TOOLS) out .pytest_cache .mypy_cache .ruff_cache

# The model catalogue (i2v/api/catalogue/models.json), regenerated from a snapshot of the
# vendor's documentation (its api-references folder) plus the legacy endpoint's schema.
# Review the diff before committing; tests/test_models.py fails while the two disagree.
VENDOR ?= ../shared/aimlapi/vendor-docs/api-references
VENDOR_LEGACY ?= ../shared/aimlapi/wan2.5-i2v-preview.legacy-endpoint.json

models: .venv/.synced
	$(RUN) python -m i2v.api.catalogue.build $(VENDOR) $(foreach f,$(VENDOR_LEGACY),--also $(f))
