# Everything a fresh machine needs: `make run` and `make test` create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= config.yaml

.PHONY: run test lint fmt check-config clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(CONFIG):
	cp config.example.yaml $(CONFIG)
	@echo "Created $(CONFIG) from config.example.yaml: edit it to add chat credentials."

run: $(STAMP) $(CONFIG)
	$(BIN)/otklik run -c $(CONFIG)

# The same checks as .pre-commit-config.yaml, then the whole suite: CI runs exactly this.
# In parallel, one pytest-xdist worker more than there are cores, each with its own Synapse
# and PostgreSQL database: many tests wait on timers, child processes and the test servers
# rather than use a core, and a third worker on 2 cores filled that time (the whole suite on a
# shared 2-core machine: 767 s with 3 workers, 894 s with 2). An idle worker takes tests
# queued for a busy one (worksteal: a few tests run for a minute or more). Not
# loadscope/loadgroup: they schedule by node id, and schemathesis gives all of a test's items
# one id, so all but one would not run. `make test TEST_WORKERS=0`: serially.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) + 1 )))
test: lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check-config: $(STAMP) $(CONFIG)
	$(BIN)/otklik check-config -c $(CONFIG)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .import_linter_cache
