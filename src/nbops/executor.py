"""The Ploomber executor of nbops pipelines: Ploomber's serial build, minus the waiting.

Enable it in ``pipeline.yaml``::

    executor:
      dotted_path: nbops.executor.NotebookExecutor

It builds the tasks in Ploomber's order, in this process (notebooks run in kernels of
their own, so nothing is shared between them), and removes the fixed costs around each
notebook:

- **warm kernels** (:mod:`nbops.kernels`): the next notebook's kernel starts, and
  imports what that notebook imports, while the current notebook runs;
- **reports off the critical path**: each task's HTML report is rendered on a
  background thread while the next notebook runs; the build waits for every report
  before it finishes (and before the build-level hooks record them).

Both can be turned off (``warm_kernels: false``, ``background_reports: false``), and
``NBOPS_EXECUTOR=plain`` turns both off for one build.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ploomber.constants import TaskStatus
from ploomber.exceptions import DAGBuildError
from ploomber.executors import Serial

__all__ = ["NotebookExecutor"]


class NotebookExecutor(Serial):
    """Ploomber's :class:`~ploomber.executors.Serial` with warm kernels and background
    HTML reports (see the module docstring)."""

    def __init__(
        self,
        warm_kernels: bool = True,
        background_reports: bool = True,
        ahead: int = 1,
        catch_exceptions: bool = True,
        catch_warnings: bool = True,
    ) -> None:
        super().__init__(
            build_in_subprocess=False,
            catch_exceptions=catch_exceptions,
            catch_warnings=catch_warnings,
        )
        plain = os.environ.get("NBOPS_EXECUTOR", "").lower() == "plain"
        self.warm_kernels = warm_kernels and not plain
        self.background_reports = background_reports and not plain
        self.ahead = ahead

    def __repr__(self) -> str:
        return (
            f"NotebookExecutor(warm_kernels={self.warm_kernels}, "
            f"background_reports={self.background_reports}, ahead={self.ahead})"
        )

    def __call__(self, dag: Any, show_progress: bool) -> Any:
        from nbops.kernels import KernelPool, warm_engine

        scheduled = [dag[name] for name in dag if dag[name].exec_status != TaskStatus.Skipped]
        notebooks = [t for t in scheduled if _papermill_notebook(t)]
        reports = _Reports() if self.background_reports else None
        if reports:
            for task in notebooks:
                reports.defer(task)
        try:
            if not (self.warm_kernels and notebooks):
                return super().__call__(dag, show_progress)
            pool = KernelPool([_plan(t) for t in notebooks], ahead=self.ahead)
            with warm_engine(pool):
                return super().__call__(dag, show_progress)
        finally:
            if reports:
                reports.wait()


def _papermill_notebook(task: Any) -> bool:
    return type(task).__name__ == "NotebookRunner" and getattr(task, "executor", "") == "papermill"


def _output_notebook(task: Any) -> str:
    """The path papermill writes the executed notebook to (as NotebookRunner picks it)."""
    product = task.product
    key = task.nb_product_key
    if isinstance(key, list):
        paths = [Path(str(product[k])) for k in key]
        chosen = next((p for p in paths if p.suffix == ".ipynb"), paths[-1])
    elif hasattr(product, "products") and hasattr(product, "get") and product.get(key):
        chosen = Path(str(product[key]))
    else:
        chosen = Path(str(product))
    return str(chosen.with_suffix(".ipynb"))


def _plan(task: Any) -> tuple[str, str, list[str]]:
    from nbops.kernels import imported_modules

    notebook = json.loads(Path(task.source.loc).read_text()) if task.source.loc else {}
    kernel = (
        task.kernelspec_name
        or notebook.get("metadata", {}).get("kernelspec", {}).get("name")
        or "python3"
    )
    return _output_notebook(task), kernel, imported_modules(notebook)


class _Reports:
    """Renders tasks' HTML reports on one background thread."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nbops-report")
        self._pending: list[tuple[str, Future[None]]] = []

    def defer(self, task: Any) -> None:
        converters = task._converter if isinstance(task._converter, list) else [task._converter]
        for converter in converters:
            if getattr(converter, "_exporter", None) is None:
                continue  # an .ipynb product: nothing to render
            converter.convert = _Deferred(converter.convert, self, task.name)

    def submit(self, name: str, convert: Any) -> None:
        self._pending.append((name, self._pool.submit(convert)))

    def wait(self) -> None:
        failed = []
        for name, future in self._pending:
            exc = future.exception()
            if exc is not None:
                failed.append(f"{name}: could not render the HTML report: {exc}")
        self._pool.shutdown()
        if failed:
            raise DAGBuildError("\n".join(failed))


class _Deferred:
    def __init__(self, convert: Any, reports: _Reports, name: str) -> None:
        self.convert, self.reports, self.name = convert, reports, name

    def __call__(self) -> None:
        self.reports.submit(self.name, self.convert)
