# Two commands on a fresh machine with Python 3:
#   make build   set up .venv (if missing), install nbops, run the pipeline (ploomber build)
#   make test    set up the same way, run the whole test suite
# The venv is reinstalled only when pyproject.toml changes.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.nbops-installed

# No telemetry or version checks from anything started here (the venv also sets these
# for processes started outside make; see src/nbops/offline.py).
export PLOOMBER_STATS_ENABLED := false
export PLOOMBER_VERSION_CHECK_DISABLED := true
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: build test lab ui clean install

build: $(STAMP)
	$(BIN)/ploomber build

# One worker per core; a test file stays on one worker (its module fixtures are shared).
test: $(STAMP)
	$(BIN)/pytest -n auto --dist loadfile

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --editable '.[dev]'
	$(BIN)/python -m nbops.offline
	@touch $@

# JupyterLab on the project's environment; no news feed, no update checks.
lab: $(STAMP)
	$(BIN)/jupyter lab --LabApp.news_url=None --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate

# MLflow's UI on the project's embedded store (runs, parameters, metrics, HTML reports).
ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/.nbops/mlflow.db --host 127.0.0.1 --port 5000

clean:
	rm -rf products
