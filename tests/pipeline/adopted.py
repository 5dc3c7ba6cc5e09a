"""Small Ploomber projects of the shapes users write, for `nbops adopt` tests.

Modelled on the sample layouts in Ploomber's own repository (tests/assets: notebooks,
functions and scripts, nested specs) and on what `ploomber scaffold` makes; each is as
small as the shape allows, because every test build starts real kernels.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

from mlflow.tracking import MlflowClient

from tests.conftest import BIN, build_env


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


#: Functions, a dict product, a script (ScriptRunner), a percent `.py` notebook rendered
#: straight to HTML, a light `.py` notebook with its own on_finish hook, a task
#: imported from another spec, and a notebook and a function that log to MLflow
#: themselves (the build's headline metric chosen in pyproject.toml) and releases its
#: model with nbops.log_model. Serial executor.
MIXED = {
    "pipeline.yaml": """
        # The mixed project: one task of each kind a user writes.
        meta:
          extract_product: false
          import_tasks_from: more.yaml  # the nested layout

        tasks:
          # a function with a parameter and a single-file product
          - source: tasks.load
            product: output/raw.csv
            params:
              rows: 20

          - source: tasks.split
            product:
              head: output/head.csv
              tail: output/tail.csv

          - source: scripts/clean.py
            class: ScriptRunner
            product: output/clean.csv

          # a .py notebook (percent format), its output rendered straight to HTML
          - source: notebooks/explore.py
            product: output/explore.html

          - source: notebooks/light.py
            product:
              nb: output/light.ipynb
              data: output/light.csv
            on_finish: hooks.mark

          # plain MLflow calls: a metric, a parameter, a figure and a model
          - source: notebooks/train.py
            product:
              nb: output/train.ipynb
              data: output/train.csv

          - source: tasks.score
            product: output/score.txt
    """,
    "pyproject.toml": """
        [tool.nbops]
        headline_metrics = ["train:r2"]
    """,
    "notebooks/train.py": """
        # %% tags=["parameters"]
        upstream = ["load"]
        product = None

        # %%
        import matplotlib.pyplot as plt
        import mlflow
        import pandas as pd
        from sklearn.linear_model import LinearRegression

        frame = pd.read_csv(upstream["load"])
        model = LinearRegression().fit(frame[["x"]], frame["x"] * 2 + 1)
        mlflow.log_param("fit_intercept", model.fit_intercept)
        mlflow.log_metric("r2", model.score(frame[["x"]], frame["x"] * 2 + 1))
        figure, axes = plt.subplots()
        axes.plot(frame["x"])
        mlflow.log_figure(figure, "figures/x.png")
        # pip_requirements given: MLflow's inference of them starts a process (seconds)
        mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])

        # %%
        import nbops

        X, y = frame[["x"]], frame["x"] * 2 + 1
        decision = nbops.log_model(model, X.head(5), test=(X, y))
        print(decision.action)
        frame.to_csv(product["data"], index=False)
    """,
    "more.yaml": """
        - source: tasks.summary
          product: output/summary.json
    """,
    "tasks.py": """
        import json
        from pathlib import Path

        import pandas as pd


        def load(product, rows):
            pd.DataFrame({"x": range(rows)}).to_csv(product, index=False)


        def split(upstream, product):
            frame = pd.read_csv(upstream["load"])
            frame.head(5).to_csv(product["head"], index=False)
            frame.tail(5).to_csv(product["tail"], index=False)


        def score(upstream, product):
            import mlflow

            rows = len(pd.read_csv(upstream["load"]))
            mlflow.log_metric("rows", rows)
            Path(product).write_text(str(rows))


        def summary(upstream, product):
            rows = len(pd.read_csv(upstream["split"]["head"]))
            Path(product).write_text(json.dumps({"rows": rows}))
    """,
    "hooks.py": """
        from pathlib import Path


        def mark(task):
            # the user's own hook: leaves a trace outside the products
            with open(Path(__file__).parent / "hook-ran.txt", "a") as fh:
                fh.write(task.name + "\\n")
    """,
    "scripts/clean.py": """
        # %% tags=["parameters"]
        upstream = ["load"]
        product = None

        # %%
        import pandas as pd

        pd.read_csv(upstream["load"]).dropna().to_csv(product, index=False)
    """,
    "notebooks/explore.py": """
        # %% [markdown]
        # # Explore

        # %% tags=["parameters"]
        upstream = ["clean"]
        product = None

        # %%
        import pandas as pd

        print(len(pd.read_csv(upstream["clean"])))
    """,
    "notebooks/light.py": """
        # + tags=["parameters"]
        upstream = ["load"]
        product = None
        # -

        import pandas as pd

        pd.read_csv(upstream["load"]).describe().to_csv(product["data"])
    """,
}

#: A grid of tasks on Ploomber's parallel executor, each grid task with the user's own
#: on_finish, the DAG with its own on_finish, and a notebook that reads the grid.
GRID = {
    "pipeline.yaml": """
        executor: parallel

        on_finish: hooks.dag_done

        tasks:
          - source: tasks.make
            product: output/data.csv

          - source: tasks.fit
            name: fit-[[alpha]]
            product: output/fit-[[alpha]].json
            grid:
              alpha: [1, 2, 3]
            on_finish: hooks.mark

          - source: notebooks/report.py
            product: output/report.html
    """,
    "tasks.py": """
        import json
        from pathlib import Path

        import pandas as pd


        def make(product):
            pd.DataFrame({"x": range(10)}).to_csv(product, index=False)


        def fit(upstream, product, alpha):
            total = pd.read_csv(upstream["make"])["x"].sum()
            Path(product).write_text(json.dumps({"alpha": alpha, "score": total / alpha}))
    """,
    "hooks.py": """
        from pathlib import Path


        def mark(task):
            with open(Path(__file__).parent / "hook-ran.txt", "a") as fh:
                fh.write(task.name + "\\n")


        def dag_done(dag):
            (Path(__file__).parent / "dag-hook-ran.txt").write_text("yes")
    """,
    "notebooks/report.py": """
        # %% tags=["parameters"]
        upstream = ["fit-*"]
        product = None

        # %%
        print(sorted(upstream["fit-*"]))
    """,
}


def make(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    return write(root, files)


def run(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=900,
        env=build_env(),
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


def builds(root: Path) -> list[tuple[object, dict[str, object]]]:
    """Every recorded build, oldest first, with its task runs by name."""
    client = MlflowClient(f"sqlite:///{root / '.nbops' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(root.name)
    runs = client.search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time ASC"], max_results=1000
    )
    return [
        (
            parent,
            {
                r.data.tags["nbops.task"]: r
                for r in runs
                if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
            },
        )
        for parent in runs
        if parent.data.tags.get("nbops.kind") == "build"
    ]


def artifacts(root: Path, run: object, folder: str) -> list[str]:
    client = MlflowClient(f"sqlite:///{root / '.nbops' / 'mlflow.db'}")
    return sorted(Path(a.path).name for a in client.list_artifacts(run.info.run_id, folder))


def spooled(root: Path) -> list[dict[str, object]]:
    return [
        json.loads(p.read_text()) for p in sorted((root / ".nbops" / "spool").glob("*/record.json"))
    ]
