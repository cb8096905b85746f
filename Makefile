# make lab  : install into .venv, build the demo store, open JupyterLab on notebooks/
# make test : install into .venv and run every test (unit, notebooks under nbval, lint, types, layers)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STORE ?= demo-store
DEMO_BATCHES ?= 300

.PHONY: lab test install demo lint typecheck layers unit notebooks bench clean validation-report

$(STAMP): pyproject.toml extensions/jupyter/pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]" -e extensions/jupyter
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	test -e $(DEMO_STORE)/pharmakg-store.json || ( \
	  $(BIN)/pharmakg --store $(DEMO_STORE) demo --batches $(DEMO_BATCHES) --seed 1 --reason "demo plant for the lab" && \
	  $(BIN)/pharmakg --store $(DEMO_STORE) twin fit TW-DRY --preset drying --reason "demo drying twin" > /dev/null && \
	  $(BIN)/pharmakg --store $(DEMO_STORE) twin fit TW-PRESS --preset compaction --reason "demo compaction twin" > /dev/null )

lab: demo
	PHARMAKG_STORE=$(abspath $(DEMO_STORE)) $(BIN)/jupyter lab --notebook-dir=notebooks $$([ "$$(id -u)" = 0 ] && echo --allow-root)

lint: $(STAMP)
	$(BIN)/ruff check pharmakg tests benchmarks extensions
	$(BIN)/ruff format --check pharmakg tests benchmarks extensions

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/python -m pytest -q --junitxml=build/junit.xml

# GAMP 5 validation pack: requirements (docs/requirements.csv) -> tests -> last results, as HTML
# (the report is written even when tests fail: it shows which requirements they break)
validation-report: $(STAMP)
	-$(BIN)/python -m pytest -q --junitxml=build/junit.xml
	$(BIN)/python -m tests.validation_report build/junit.xml build/validation-report.html

notebooks: $(STAMP)
	$(BIN)/python -m pytest -q -p no:randomly --nbval-lax notebooks

test: lint typecheck layers unit notebooks

bench: $(STAMP)
	$(BIN)/python benchmarks/ingest.py

clean:
	rm -rf $(VENV) $(DEMO_STORE) build .pytest_cache .mypy_cache .ruff_cache
