# Passage: the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
export PASSAGE_ENVIRONMENT ?= development

.PHONY: run install init demo serve test test-pg test-reliability test-browser lint typecheck check frontend frontend-check bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP) ## Create the virtual environment and install everything

init: install ## Create keys (demo-marked) and migrate the embedded database
	$(BIN)/passage init --demo

demo: init ## Load demo agencies, users and ~50 fictional cases (once)
	@if [ ! -f var/.demo-loaded ]; then $(BIN)/passage demo-data --cases 50 && touch var/.demo-loaded; \
	else echo "demo data already loaded (rm -r var/ to start over)"; fi

run: demo ## Install, migrate, load demo data and serve on http://127.0.0.1:8000
	@echo "Passage is starting on http://127.0.0.1:8000  (demo logins: see README.md)"
	$(BIN)/passage serve --host 127.0.0.1 --port 8000

# Tests run in TEST_WORKERS processes (pytest-xdist); every worker clones its own database.
TEST_WORKERS ?= 2

test: install ## The whole suite on the embedded SQLite database
	PASSAGE_ENVIRONMENT=test TEST_DATABASE_URL=sqlite $(BIN)/pytest -q -n $(TEST_WORKERS) -m "not reliability"

test-pg: install ## The same suite on PostgreSQL ($$TEST_DATABASE_URL)
	PASSAGE_ENVIRONMENT=test TEST_DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/pytest -q -n $(TEST_WORKERS) -m "not reliability"

# Real worker processes, SIGKILLs, a 30 s database outage, key rotation, schemathesis per
# role (docs/reliability.md). Sizes are bounded so that it takes a few minutes on 2 cores.
test-reliability: install ## Reliability suite on PostgreSQL ($$TEST_DATABASE_URL)
	@# schemathesis, once per role, on TEST_WORKERS processes (in-process app, no shared state)
	PASSAGE_ENVIRONMENT=test TEST_DATABASE_URL=$(TEST_DATABASE_URL) \
	PASSAGE_FUZZ_EXAMPLES=$${PASSAGE_FUZZ_EXAMPLES:-6} \
	$(BIN)/pytest -q -n $(TEST_WORKERS) -m reliability tests/operations/test_reliability_schemathesis.py
	@# real worker processes killed, a database outage, key rotation: one at a time
	PASSAGE_ENVIRONMENT=test TEST_DATABASE_URL=$(TEST_DATABASE_URL) \
	PASSAGE_CRASH_SECONDS=$${PASSAGE_CRASH_SECONDS:-20} PASSAGE_OUTAGE_SECONDS=$${PASSAGE_OUTAGE_SECONDS:-30} \
	$(BIN)/pytest -q -m reliability tests/operations --ignore=tests/operations/test_reliability_schemathesis.py \
	--durations=5

lint: install
	$(BIN)/ruff check app tests migrations bench
	$(BIN)/ruff format --check app tests migrations bench

typecheck: install
	$(BIN)/mypy app

check: lint typecheck test test-pg

frontend: ## Rebuild vendored front-end assets from package-lock.json (needs Node 20+)
	cd frontend && npm ci && node build.mjs

frontend-check: ## Verify committed frontend/static matches the lockfile and src/
	cd frontend && npm ci && node build.mjs --check
	$(BIN)/pytest tests/unit/test_frontend_assets.py

bench: install
	PASSAGE_ENVIRONMENT=test $(BIN)/python bench/encryption.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
