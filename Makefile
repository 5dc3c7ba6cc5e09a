# Two commands on a fresh machine with Python 3:
#   make build   set up .venv (if missing), install nbops, run the pipeline (ploomber build)
#   make test    set up the same way, run the whole test suite
# The venv is reinstalled only when pyproject.toml changes.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.nbops-installed
# Airflow 3 in a venv of its own (it pins FastAPI below ours): `make airflow-env`.
AIRFLOW_VENV ?= .venv-airflow
AIRFLOW_REQUIREMENT ?= apache-airflow==3.3.2

# No telemetry or version checks from anything started here (the venv also sets these
# for processes started outside make; see src/nbops/build/offline.py).
export PLOOMBER_STATS_ENABLED := false
export PLOOMBER_VERSION_CHECK_DISABLED := true
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: build test lab ui clean install lint docs hooks airflow-env

build: $(STAMP)
	$(BIN)/ploomber build

# One worker per core; a test file stays on one worker (its module fixtures are shared).
# The Airflow venv (made once) is for the DAG export test.
test: $(STAMP) $(AIRFLOW_VENV)/.nbops-installed
	$(BIN)/pytest -n auto --dist loadfile --durations=25

install: $(STAMP)

# Again when the start-up hook changes: the venv holds a copy of it (nbops.build.offline);
# and when the template changes: the editable install copies it (nbops/_template, what
# `nbops init` scaffolds), so a changed notebook reaches new projects only on reinstall.
TEMPLATE := pipeline.yaml pipeline.monitor.yaml env.yaml $(wildcard notebooks/*.ipynb notebooks/*/*.ipynb)
$(STAMP): pyproject.toml src/nbops/build/startup.py src/nbops/build/offline.py $(TEMPLATE)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --editable '.[dev]'
	$(BIN)/python -m nbops.build.offline
	@touch $@

# Apache Airflow 3 in a venv of its own (about 290 MB; it caps FastAPI below the version
# the project's service runs on): tests/commands/test_export.py loads the DAG of
# `nbops export airflow` with it and runs a task. The version the tests were run with.

airflow-env: $(AIRFLOW_VENV)/.nbops-installed

$(AIRFLOW_VENV)/.nbops-installed:
	@test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet '$(AIRFLOW_REQUIREMENT)'
	@touch $@

# JupyterLab on the project's environment with the project's Jupyter config (.jupyter/):
# a pipeline notebook opens with its task's upstream and product paths injected and is
# saved without them or outputs (src/nbops/build/lab.py); no news feed, update checks, PyPI
# search or Ploomber cloud extension.
lab: $(STAMP)
	JUPYTER_CONFIG_PATH=$(CURDIR)/.jupyter$(if $(JUPYTER_CONFIG_PATH),:$(JUPYTER_CONFIG_PATH)) $(BIN)/jupyter lab

# The pre-commit checks (.pre-commit-config.yaml) on every tracked file, the import
# contracts ([tool.importlinter] in pyproject.toml: imports run one way), and the manual
# built strictly (a broken link or a stale API reference fails); CI runs this.
lint: $(STAMP) docs
	$(BIN)/pre-commit run --all-files --show-diff-on-failure
	$(BIN)/lint-imports

# The manual (docs/, mkdocs.yml) as a static site in site/.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

# Git set-up of this clone: the pre-commit hook, and nbdime's notebook-aware diff and
# merge drivers (for *.ipynb, see .gitattributes) called by absolute path, so `git diff`
# works without the venv activated.
hooks: $(STAMP)
	$(BIN)/pre-commit install
	$(BIN)/nbdime config-git --enable
	git config diff.jupyternotebook.command "$(abspath $(BIN))/git-nbdiffdriver diff"
	git config merge.jupyternotebook.driver "$(abspath $(BIN))/git-nbmergedriver merge %O %A %B %L %P"

# MLflow's UI on the project's embedded store (runs, parameters, metrics, HTML reports).
ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/.nbops/mlflow.db --host 127.0.0.1 --port 5000

clean:
	rm -rf products site
