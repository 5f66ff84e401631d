# The two commands a newcomer needs: `make demo` and `make test`.
# Both create .venv/ in the repository and install what they need themselves.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "nestd needs Python 3.11 or newer (found $$($(PYTHON) --version))"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## demo: a private broker, a simulated fleet, the daemon, and a retailer sending it orders
demo: $(STAMP)
	@sh scripts/ensure-mosquitto.sh
	$(BIN)/nestd demo

## test: lint, type-check and run the whole test suite against a real broker
test: $(STAMP)
	@sh scripts/ensure-mosquitto.sh
	$(BIN)/ruff check nestd sitl tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check nestd sitl tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/bench_nestsim.py
	$(BIN)/python bench/bench_airspace.py
	$(BIN)/python bench/bench_link.py
	$(BIN)/python bench/bench_safety.py
	$(BIN)/python bench/bench_quote.py
	$(BIN)/python bench/bench_intake.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
