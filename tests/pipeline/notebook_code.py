"""A pipeline's notebooks run as code in the test's own process: each task's code cells,
in Ploomber's order, with the parameters, products and upstream paths Ploomber renders
from the project's spec and env.yaml (what papermill would inject), without kernels,
HTML reports or a run record.

For checks of what the notebooks compute (a monitoring verdict on a dataset) when a real
build of the same notebooks, in the same test file or another, already covers the build
around them; a real build is 10-20 CPU-s of fixed costs, this is the notebooks' own work.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat
import yaml

from tests.conftest import merge_settings


def code_cells(notebook: Path) -> list[str]:
    """The notebook's code cells, without its ``parameters`` cell."""
    nb = nbformat.read(notebook, as_version=4)
    return [
        cell.source
        for cell in nb.cells
        if cell.cell_type == "code" and "parameters" not in cell.metadata.get("tags", [])
    ]


def run_notebooks(root: Path, spec: str = "pipeline.yaml", **env: Any) -> dict[str, dict]:
    """Run every task of ``root``'s ``spec`` in this process, ``env`` merged into its
    env.yaml (as ``--env--*`` options would be); returns each task's namespace.

    The caller sets the working directory to ``root`` (notebooks find their project
    from it) and the environment variables the notebooks read.
    """
    import matplotlib.pyplot as plt
    from ploomber.spec import DAGSpec

    assert Path.cwd().resolve() == root.resolve(), "run from the project folder"
    values = yaml.safe_load((root / "env.yaml").read_text())
    merge_settings(values, env)
    dag = DAGSpec(str(root / spec), env=values).to_dag()
    dag.render(force=True, show_progress=False)
    namespaces = {}
    for name in dag:  # Ploomber's order: upstream first
        task = dag[name]
        params = {k: v for k, v in task.params.items() if k not in ("product", "upstream")}
        namespace: dict[str, Any] = {
            **params,
            "product": task.product.to_json_serializable(),
            "upstream": (
                {up: task.upstream[up].product.to_json_serializable() for up in task.upstream}
                or None
            ),
        }
        for folder in {Path(p).parent for p in namespace["product"].values()}:
            os.makedirs(folder, exist_ok=True)  # Ploomber makes the products' folders
        source = Path(str(task.source.loc))
        for code in code_cells(source):
            exec(compile(code, str(source), "exec"), namespace)
        plt.close("all")
        namespaces[name] = namespace
    return namespaces
