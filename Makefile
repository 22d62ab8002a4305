# The two set-up commands of README.md: `make demo` and `make test`. Each does its own set-up from a fresh
# clone: a virtual environment and the stack's servers, built once into user-level caches and reused after.
PYTHON ?= python3
VENV_PY = $$($(PYTHON) e2e/venv.py)/bin/python
export PYTHONPATH := $(CURDIR)

.PHONY: demo test bench lint servers

demo: ## Start the stack and run the main job end to end
	$(VENV_PY) -m e2e.demo

test: servers ## The whole test suite (what .ci/run calls)
	$(VENV_PY) -m pytest $(PYTEST_ARGS)

servers: ## Fetch and build every server of the stack (cached; a server that fails is reported by its tests)
	-$(VENV_PY) -m e2e.stack build

bench: ## Every benchmark, each printing Pyrostore beside its baseline
	for b in bench/*.py; do $(VENV_PY) $$b || exit 1; done

lint:
	$(VENV_PY) -m ruff check . && $(VENV_PY) -m ruff format --check .
