"""``nbops init``: a new project from the reference pipeline, on the user's own data.

The template is the reference project itself (``pipeline.yaml``,
``pipeline.monitor.yaml``, ``env.yaml``, ``notebooks/``, the workflows, the
``.jupyter/`` config of ``make lab``): shipped inside the wheel as ``nbops/_template``,
or read from the repository in a development install.
Given a data file and its target column, the new project gets a copy of the data, a
schema inferred from it (to review), the task guessed from the target, release floors
for that task, and env.yaml pointing at all of them, so ``make build`` works at once.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import yaml

from nbops.errors import ConfigError

__all__ = ["init_project", "template_root"]

TEMPLATE_ITEMS = ("pipeline.yaml", "pipeline.monitor.yaml", "env.yaml", "notebooks")
WORKFLOWS = ("cd.yml", "monitor.yml", "score.yml")

_MAKEFILE = """\
# {name}: an nbops project. Two commands:
#   make build   run the pipeline (ploomber build): reports and model in products/
#   make monitor compare recent predictions with the training data (nbops monitor)
# NBOPS_VENV is the environment nbops is installed in (the one that created this
# project); set it, or NBOPS_SPEC (what pip installs) to get a fresh .venv instead.

NBOPS_VENV ?= {venv}
NBOPS_SPEC ?= {spec}
BIN := $(if $(wildcard $(NBOPS_VENV)/bin/nbops),$(NBOPS_VENV)/bin,.venv/bin)

export PLOOMBER_STATS_ENABLED := false
export PLOOMBER_VERSION_CHECK_DISABLED := true

.PHONY: build install monitor serve lab ui clean

build: install
\t$(BIN)/ploomber build

install:
\t@test -x $(BIN)/nbops || (python3 -m venv .venv && .venv/bin/pip install --quiet "$(NBOPS_SPEC)" && .venv/bin/python -m nbops.build.offline)

monitor: install
\t$(BIN)/nbops monitor

serve: install
\t$(BIN)/nbops serve

# JupyterLab with the project's Jupyter config (.jupyter/): notebooks open with their
# inputs wired in and are saved without them or outputs; nothing calls out.
lab: install
\tJUPYTER_CONFIG_PATH=$(CURDIR)/.jupyter$(if $(JUPYTER_CONFIG_PATH),:$(JUPYTER_CONFIG_PATH)) $(BIN)/jupyter lab

ui: install
\t$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/.nbops/mlflow.db --host 127.0.0.1 --port 5000

clean:
\trm -rf products
"""

_README = """\
# {name}

An [nbops](https://github.com/) project: notebooks chained by Ploomber into a pipeline,
every build recorded (MLflow), the model released through a statistical gate, served
and monitored.

```bash
make build      # ingest → validate → split → train → evaluate → gate; reports in products/
make serve      # the champion over HTTP (POST /predict)
make monitor    # drift and live performance against the training data
make lab        # JupyterLab on the notebooks, their inputs wired in
```

- Data: `{source}`, target `{target}` ({task}).
- Data contract: `{schema}`, drafted from the data by `nbops init`. **Review it**: it
  is what every build validates new data against.
- Settings: `env.yaml` (features, models, release policy, monitoring thresholds).
"""

_GITIGNORE = """\
.venv/
products/
.nbops/
nbops-report/
*.metadata
.ipynb_checkpoints/
__pycache__/
"""


def template_root() -> Path:
    """Where the template files are: the wheel's copy, else the source repository."""
    package = Path(__file__).resolve().parents[1]  # src/nbops (or site-packages/nbops)
    for candidate in (package / "_template", package.parents[1]):
        if all((candidate / item).exists() for item in TEMPLATE_ITEMS):
            return candidate
    raise ConfigError("nbops' project template is missing from this installation; reinstall nbops.")


def init_project(
    dest: str | Path,
    *,
    data: str | Path | None = None,
    target: str | None = None,
    task: str | None = None,
) -> Path:
    """Create a project in ``dest`` (which must be empty or absent).

    Args:
        data: a CSV, TSV or Parquet file, copied into ``data/``; without it the project
            uses the bundled generator (the churn example).
        target: the column to predict (required with ``data``).
        task: ``classification`` or ``regression``; guessed from the target if omitted.
    """
    from nbops.data.schema import infer_schema, schema_to_yaml
    from nbops.data.sources import read_table
    from nbops.release.gate import DEFAULT_FLOORS

    dest = Path(dest).resolve()
    if dest.exists() and any(dest.iterdir()):
        raise ConfigError(
            f"{dest} is not empty: nbops init creates a project in a new or empty folder."
        )
    if data is not None and not target:
        raise ConfigError("--data needs --target: the column the model should predict.")
    template = template_root()
    env = yaml.safe_load((template / "env.yaml").read_text())
    name = _slug(dest.name)

    frame = None
    if data is not None:
        source = Path(data)
        if not source.is_file():
            raise ConfigError(f"Data file {source} does not exist.")
        frame = read_table(source, target=target).frame
        if target not in frame.columns:
            shown = ", ".join(map(str, frame.columns[:20]))
            raise ConfigError(
                f"Target column {target!r} is not in {source.name}; its columns: {shown}."
            )
        task = task or _guess_task(frame[target])

    dest.mkdir(parents=True, exist_ok=True)
    for item in TEMPLATE_ITEMS[:-1]:
        shutil.copy2(template / item, dest / item)
    shutil.copytree(
        template / "notebooks",
        dest / "notebooks",
        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"),
    )
    (dest / "schema").mkdir()
    workflows = dest / ".github" / "workflows"
    workflows.mkdir(parents=True)
    for workflow in WORKFLOWS:
        shutil.copy2(template / ".github" / "workflows" / workflow, workflows / workflow)
    # The Jupyter config of `make lab` (cell injection, clean saves, nothing calls out).
    shutil.copytree(
        template / ".jupyter", dest / ".jupyter", ignore=shutil.ignore_patterns("__pycache__")
    )

    if frame is not None and data is not None:
        (dest / "data").mkdir()
        copied = dest / "data" / Path(data).name
        shutil.copy2(data, copied)
        schema_path = f"schema/{_slug(Path(data).stem)}.yaml"
        (dest / schema_path).write_text(
            schema_to_yaml(infer_schema(frame), source=f"data/{copied.name}")
        )
        env["data"].update({"source": f"data/{copied.name}", "target": target})
        env["task"] = task
        env["schema"] = schema_path
        env["evaluate"]["slice_column"] = None
    else:
        shutil.copy2(template / env["schema"], dest / env["schema"])
    env["release"]["model_name"] = name
    # A regression target is judged against its baseline and R², not a ROC AUC floor.
    env["release"]["floors"].update(DEFAULT_FLOORS[env["task"]])
    (dest / "env.yaml").write_text(_env_yaml(template / "env.yaml", env))

    spec = str(template) if (template / "pyproject.toml").exists() else "nbops"
    (dest / "Makefile").write_text(_MAKEFILE.format(name=name, venv=sys.prefix, spec=spec))
    (dest / "README.md").write_text(
        _README.format(
            name=name,
            source=env["data"]["source"],
            target=env["data"]["target"],
            task=env["task"],
            schema=env["schema"],
        )
    )
    (dest / ".gitignore").write_text(_GITIGNORE)
    return dest


def _guess_task(column: object) -> str:
    import pandas as pd

    series = pd.Series(column).dropna()
    if pd.api.types.is_float_dtype(series) and series.nunique() > 20:
        return "regression"
    if pd.api.types.is_integer_dtype(series) and series.nunique() > 20:
        return "regression"
    return "classification"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "model"


def _env_yaml(template: Path, values: dict) -> str:
    """The template's env.yaml with its comments, the changed top-level values set."""
    text = template.read_text()
    lines = text.splitlines(keepends=True)
    out = []
    replacements = {
        ("data", "source"): values["data"]["source"],
        ("data", "target"): values["data"]["target"],
        ("", "task"): values["task"],
        ("", "schema"): values["schema"],
        ("release", "model_name"): values["release"]["model_name"],
    }
    for key, value in values["release"].get("floors", {}).items():
        replacements[("release", key)] = value
    if values.get("evaluate", {}).get("slice_column") is None:
        replacements[("evaluate", "slice_column")] = None
    section = ""
    for line in lines:
        match = re.match(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*):(\s*)([^#\n]*?)(\s*#.*)?\n?$", line)
        if match and not match.group(1):
            section = match.group(2) if not match.group(4) else ""
        if match:
            key = ("" if not match.group(1) else section, match.group(2))
            if key in replacements and (match.group(4) or key[0] == ""):
                value = yaml.safe_dump(replacements[key], default_flow_style=True).strip()
                value = value.removesuffix("\n...").removesuffix("...").strip()
                comment = match.group(5) or ""
                line = f"{match.group(1)}{match.group(2)}: {value}{'  ' + comment.strip() if comment else ''}\n"
        out.append(line)
    result = "".join(out)
    if yaml.safe_load(result) != values:  # the line edit missed something: plain dump
        return yaml.safe_dump(values, sort_keys=False)
    return result
