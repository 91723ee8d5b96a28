# OneMap: `make run` serves the demo city, `make test` runs the whole suite.
# Both are idempotent and cheap when nothing changed (see scripts/ for each step).

SHELL := /bin/sh
.DEFAULT_GOAL := help

VENV        := .venv
HOST        ?= 127.0.0.1
PORT        ?= 5000
DEMO_SCALE  ?= 0.05
PYTEST_ARGS ?=
DISRUPTIVE  ?= 1
# test-only direct dependencies: the lock adds them (and what they pull in) to the runtime pins
TEST_DEPS   := pytest pytest-timeout httpx OWSLib playwright pyrosm schemathesis

export VENV

.PHONY: help run test lock bench clean distclean venv venv-test

help:
	@echo "make run        serve the demo city on http://$(HOST):$(PORT)/ (HOST, PORT, ONEMAP_DATABASE_URL)"
	@echo "make test       run the test suite (PYTEST_ARGS='-k tiles -x' to narrow it)"
	@echo "make lock       regenerate requirements.lock and requirements-test.lock from pyproject.toml"
	@echo "make bench      run the benchmarks (bench/run.sh)"
	@echo "make clean      remove caches and build artefacts (distclean: also .venv, node_modules, data/*.gpkg)"

venv:
	scripts/ensure-venv requirements.lock

venv-test:
	scripts/ensure-venv requirements-test.lock

run:
	scripts/ensure-system run
	scripts/ensure-venv requirements.lock
	scripts/ensure-node
	@case "$${ONEMAP_DATABASE_URL:-}" in postgresql*) scripts/ensure-postgres "$$ONEMAP_DATABASE_URL" ;; esac
	@if $(VENV)/bin/onemap demo --help >/dev/null 2>&1; then \
		$(VENV)/bin/onemap demo --scale $(DEMO_SCALE); \
	else \
		echo "onemap: warning: this checkout has no 'onemap demo' command; serving the store as it is" >&2; \
	fi
	exec $(VENV)/bin/onemap serve --host "$(HOST)" --port "$(PORT)"

test:
	scripts/ensure-system test
	scripts/ensure-venv requirements-test.lock
	scripts/ensure-postgres
	scripts/ensure-node
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)
	# last and alone: restarts the PostgreSQL cluster under load (tests/test_resilience.py), so no
	# other test is mid-run; DISRUPTIVE=0 skips it
	ONEMAP_TEST_DISRUPTIVE=$(DISRUPTIVE) $(VENV)/bin/python -m pytest -m disruptive tests/test_resilience.py

# pip-compile-free: resolve in a throwaway venv, freeze it. The project itself is never pinned.
lock:
	@set -e; \
	python=$$(scripts/find-python); \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	deps=$$("$$python" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml","rb"))["project"]["dependencies"]))'); \
	echo "onemap: resolving runtime dependencies"; \
	"$$python" -m venv "$$tmp/run"; \
	echo "$$deps" > "$$tmp/deps.txt"; \
	"$$tmp/run/bin/python" -m pip install -qq --disable-pip-version-check -r "$$tmp/deps.txt"; \
	{ echo "# Runtime pins for OneMap (Python 3.12). Regenerate with: make lock"; \
	  "$$tmp/run/bin/python" -m pip freeze --exclude-editable; } > "$$tmp/requirements.lock"; \
	echo "onemap: resolving runtime + test dependencies ($(TEST_DEPS))"; \
	"$$python" -m venv "$$tmp/test"; \
	"$$tmp/test/bin/python" -m pip install -qq --disable-pip-version-check -r "$$tmp/deps.txt" $(TEST_DEPS); \
	{ echo "# Runtime + test pins for OneMap (Python 3.12). Regenerate with: make lock"; \
	  "$$tmp/test/bin/python" -m pip freeze --exclude-editable; } > "$$tmp/requirements-test.lock"; \
	if grep -iqE '^(torch|torchvision|triton|nvidia-|cuda|onemap)' "$$tmp/requirements.lock" "$$tmp/requirements-test.lock"; then \
		echo "onemap: refusing a lock with torch/CUDA/onemap pins:" >&2; \
		grep -iE '^(torch|torchvision|triton|nvidia-|cuda|onemap)' "$$tmp"/*.lock >&2; exit 1; \
	fi; \
	mv "$$tmp/requirements.lock" "$$tmp/requirements-test.lock" .; \
	echo "onemap: wrote requirements.lock ($$(grep -c '==' requirements.lock) pins), requirements-test.lock ($$(grep -c '==' requirements-test.lock) pins)"

bench:
	scripts/ensure-system bench
	scripts/ensure-venv requirements.lock
	exec bench/run.sh

clean:
	rm -rf .pytest_cache build *.egg-info data/cache
	find . -path ./$(VENV) -prune -o -path ./node_modules -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) node_modules data/*.gpkg data/*.gpkg-*
