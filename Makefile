# The two set-up commands of README.md: `make demo` and `make test`. Each does its own set-up from a fresh
# clone: a virtual environment (installed from requirements.lock) and the stack's servers, built once into
# user-level caches and reused after.
PYTHON ?= python3
# Prefix of every command that runs in the environment: creates it if needed, and stops on a failure.
IN_VENV = venv="$$($(PYTHON) e2e/venv.py)" &&
VENV_PY = "$$venv/bin/python"
BENCHES ?= $(filter-out __init__ common,$(basename $(notdir $(wildcard bench/*.py))))
export PYTHONPATH := $(CURDIR)

.PHONY: demo test bench soak lint lock servers

demo: ## Start the stack and run the main job end to end
	$(IN_VENV) $(VENV_PY) -m e2e.demo

test: servers ## The whole test suite (what .ci/run calls)
	$(IN_VENV) $(VENV_PY) -m pytest $(PYTEST_ARGS)

servers: ## Fetch and build every server of the stack (cached; a server that fails is reported by its tests)
	$(IN_VENV) { $(VENV_PY) -m e2e.stack build || true; }

bench: ## Every benchmark (or those named in BENCHES), each printing Pyrostore beside its baseline
	$(IN_VENV) for b in $(BENCHES); do $(VENV_PY) bench/$$b.py || exit 1; done

soak: ## MINUTES (default 10) of archiving and reading under store faults, SIGKILLs and broker restarts; a report
	$(IN_VENV) $(VENV_PY) -m e2e.soak --minutes $(or $(MINUTES),10)

lint: ## ruff (lint and format) and mypy
	$(IN_VENV) $(VENV_PY) -m ruff check . && $(VENV_PY) -m ruff format --check . && $(VENV_PY) -m mypy

lock: ## Update requirements.lock from pyproject.toml (UPGRADE=1: newest releases within its ranges)
	$(PYTHON) e2e/venv.py lock $(if $(UPGRADE),--upgrade)
