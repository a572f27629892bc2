# Two commands: `make run` and `make test`. Both create .venv on first use; `make run` installs
# only what the hub needs to run, `make test` adds the test and lint tools.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
PIP := $(BIN)/python -m pip install -q --disable-pip-version-check

.PHONY: run test lint fmt bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# --no-compile: byte-compiling every installed module costs a quarter of the install; the modules
# the hub imports are compiled on first import instead.
$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) --no-compile -e .
	@touch $(RUN_STAMP)

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) -e '.[dev]'
	@touch $(RUN_STAMP) $(DEV_STAMP)

run: $(RUN_STAMP)
	$(BIN)/switchboard serve $(ARGS)

# Two processes (the machines this runs on have 2 cores); a test file stays on one process.
PYTEST_ARGS ?= -n 2 --dist loadfile

test: $(DEV_STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/ruff check src tests bench tools
	$(BIN)/mypy
	$(BIN)/python tools/check_cycles.py src/switchboard

fmt: $(DEV_STAMP)
	$(BIN)/ruff format src tests bench tools
	$(BIN)/ruff check --fix src tests bench tools

clean:
	rm -rf $(VENV) switchboard.db switchboard.db-wal switchboard.db-shm .pytest_cache .mypy_cache .ruff_cache
