"""The Ploomber executor of nbops pipelines: Ploomber's serial build, minus the waiting.

Enable it in ``pipeline.yaml``::

    executor:
      dotted_path: nbops.build.executor.NotebookExecutor

It builds the tasks in Ploomber's order, in this process (notebooks run in kernels of
their own, so nothing is shared between them), and removes the fixed costs around each
notebook:

- **warm kernels** (:mod:`nbops.build.kernels`): the next notebook's kernel starts, and
  imports what that notebook imports, while the current notebook runs;
- **forked kernels** (:mod:`nbops.build.forks`): on Linux, each kernel is forked from
  one template process that imported ipykernel and what the build's notebooks import,
  once for the build: a fresh process per notebook, without paying Python's start and
  the imports again. For ``ploomber build --force`` the template starts when the
  pipeline is loaded (this executor is made), so its imports overlap Ploomber's;
- **reports off the critical path**: each task's HTML report is rendered on a
  background thread while the next notebook runs; the build waits for every report
  before it finishes (and before the build-level hooks record them);
- **independent tasks side by side** (``workers``): tasks whose upstream is done,
  such as the grid's candidate models, run at the same time, each in its own kernel.
  Only the notebooks' execution overlaps: Ploomber's bookkeeping (statuses, product
  metadata, hooks, the run record) still happens one task at a time, under a lock the
  kernel engine lets go of while cells run. ``workers: auto`` (the default) runs two
  at a time from 4 cores up and one below, because a gradient-boosting fit already
  uses every core.

Each can be turned off (``warm_kernels: false``, ``fork_kernels: false``,
``background_reports: false``, ``workers: 1``), and ``NBOPS_EXECUTOR=plain`` turns all of them off for one build.
Whatever the settings, notebooks' kernels start over IPC, not TCP (:mod:`nbops.build.kernels`).
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import warnings
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from ploomber.constants import TaskStatus
from ploomber.exceptions import DAGBuildEarlyStop, DAGBuildError
from ploomber.executors import Serial
from ploomber.executors.serial import LazyFunction, build_in_current_process, catch_exceptions
from ploomber.messagecollector import BuildExceptionsCollector

from nbops.errors import ConfigError

__all__ = ["NotebookExecutor"]


class NotebookExecutor(Serial):
    """Ploomber's :class:`~ploomber.executors.Serial` with warm kernels and background
    HTML reports (see the module docstring)."""

    def __init__(
        self,
        warm_kernels: bool = True,
        fork_kernels: bool = True,
        background_reports: bool = True,
        ahead: int = 1,
        workers: int | str = "auto",
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
        self.fork_kernels = fork_kernels and not plain
        self.background_reports = background_reports and not plain
        self.ahead = ahead
        self.workers = 1 if plain else _workers(workers)
        # Loading the spec makes this executor, even when Ploomber then builds a task
        # without it (`ploomber task NAME`): its kernels start over IPC too.
        from nbops.build.kernels import fork_alone, ipc_by_default, start_template

        ipc_by_default()
        command, forced = _ploomber_command()
        # A forced build runs every notebook: the kernel template starts now and
        # imports ipykernel while Ploomber renders the pipeline, instead of after.
        self._template = (
            start_template() if self.fork_kernels and command == "build" and forced else None
        )
        if self.fork_kernels and command == "task":
            fork_alone()  # its one notebook's kernel, and its record, from a template
        if self._template is not None:
            atexit.register(self._template.discard)  # the build never came (an error)

    def __repr__(self) -> str:
        return (
            f"NotebookExecutor(warm_kernels={self.warm_kernels}, fork_kernels={self.fork_kernels}, "
            f"background_reports={self.background_reports}, ahead={self.ahead}, "
            f"workers={self.workers})"
        )

    def __call__(self, dag: Any, show_progress: bool) -> Any:
        from nbops.build.kernels import KernelPool, warm_engine
        from nbops.build.startup import pipeline_loaded

        pipeline_loaded()  # the garbage collector runs again (nbops.build.startup)
        scheduled = [dag[name] for name in dag if dag[name].exec_status != TaskStatus.Skipped]
        notebooks = [t for t in scheduled if _papermill_notebook(t)]
        reports = _Reports() if self.background_reports else None
        if reports:
            for task in notebooks:
                reports.defer(task)
        side_by_side = self.workers > 1 and _can_overlap(scheduled)
        build = self._side_by_side if side_by_side else super().__call__
        try:
            if not notebooks:
                if self._template is not None:
                    self._template.discard()
                    self._template = None
                return build(dag, show_progress)
            # Even with nothing warm, papermill goes through WarmEngine: its kernels
            # then start over IPC, free of TCP port races (see nbops.build.kernels).
            # With the names imported from packages: `from nbops.modeling import plots` is
            # mostly matplotlib, which each monitoring notebook's kernel imported on its
            # own (the template imports a kernel's modules before forking it; a name that
            # is not a module fails there, quietly and cheaply).
            plans = (
                [_plan(t, names=True) for t in notebooks]
                if self.warm_kernels or self.fork_kernels
                else []
            )
            plan = plans if self.warm_kernels else []
            # The template imports what any notebook of the build imports, then what
            # publishing the build's record imports: a child of it publishes the record
            # (nbops.build.recorder), so this process does not import MLflow.
            fork = [m for _, _, modules in plans for m in modules] if self.fork_kernels else None
            if fork is not None and _recorded(dag):
                fork.append("nbops.build.recorder")
            # Side by side, every task ready at once wants its kernel: start that many.
            ahead = self.ahead * self.workers if side_by_side else self.ahead
            template, self._template = self._template, None  # one build's
            pool = KernelPool(
                plan,
                ahead=ahead,
                fork_modules=list(dict.fromkeys(fork)) if fork is not None else None,
                template=template,
            )
            # The last kernels finish exiting, and are reaped, while the build records
            # its run; the process waits for them as it exits (KernelPool.close).
            with warm_engine(pool, wait=False):
                return build(dag, show_progress)
        finally:
            if reports:
                reports.wait()

    def _side_by_side(self, dag: Any, show_progress: bool) -> list[Any]:
        """Ploomber's serial build, with up to ``workers`` ready tasks at a time."""
        from nbops.build.kernels import bookkeeping

        super(Serial, self).__call__(dag)  # Ploomber's checks of the starting statuses
        exceptions_all = BuildExceptionsCollector()
        reports_all: list[Any] = []
        pending = [dag[n] for n in dag if dag[n].exec_status != TaskStatus.Skipped]
        progress = _progress(len(pending), show_progress)
        lock = threading.Lock()

        def build(task: Any) -> None:
            fn = LazyFunction(
                build_in_current_process,
                {
                    "task": task,
                    "build_kwargs": {"catch_exceptions": self._catch_exceptions},
                    "reports_all": reports_all,
                },
                task,
            )
            if self._catch_exceptions:
                fn = LazyFunction(
                    catch_exceptions, {"fn": fn, "exceptions_all": exceptions_all}, task
                )
            with bookkeeping(lock):
                fn()

        running: dict[Future[None], Any] = {}
        with (
            ThreadPoolExecutor(self.workers, thread_name_prefix="nbops-task") as pool,
            warnings.catch_warnings(record=True) as caught,
        ):
            warnings.simplefilter("ignore", DeprecationWarning)
            while pending or running:
                with lock:
                    pending = [t for t in pending if t.exec_status != TaskStatus.Aborted]
                    ready = [t for t in pending if t.exec_status in _READY]
                for task in ready[: self.workers - len(running)]:
                    pending.remove(task)
                    running[pool.submit(build, task)] = task
                    if progress is not None:
                        progress.set_description(f"Building task {task.name!r}")
                if not running:
                    break  # what is left waits on tasks that failed
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    running.pop(future)
                    future.result()  # catch_exceptions has the task's error; this is ours
                    if progress is not None:
                        progress.update()
        if progress is not None:
            progress.close()
        if caught and self._catch_warnings:
            warnings.warn(
                "Warnings during the build:\n"
                + "\n".join(sorted({str(w.message) for w in caught})),
                stacklevel=2,
            )
        if exceptions_all and self._catch_exceptions:
            if any(isinstance(m.obj, DAGBuildEarlyStop) for m in exceptions_all):
                raise DAGBuildEarlyStop(
                    f"Early stopping DAG execution, at least one of the tasks that failed raised a DAGBuildEarlyStop exception:\n{exceptions_all}"
                )
            raise DAGBuildError(str(exceptions_all))
        return reports_all


_READY = (TaskStatus.WaitingExecution, TaskStatus.WaitingDownload)


def _recorded(dag: Any) -> bool:
    """Whether nbops' hooks record this build (see :func:`nbops.build.hooks.recorded`)."""
    from nbops.build.hooks import recorded

    return recorded(dag)


def _ploomber_command() -> tuple[str | None, bool]:
    """The ``ploomber`` command this process runs (``build``, ``task``...; None when it
    is not ``ploomber``) and whether it is forced (every task it builds will run)."""
    argv = list(getattr(sys, "orig_argv", sys.argv))
    names = [Path(a).name for a in argv]
    if "ploomber" not in names:
        return None, False
    rest = argv[names.index("ploomber") + 1 :]
    if not rest:
        return None, False
    return rest[0], any(a in ("--force", "-f") for a in rest)


def _workers(value: int | str) -> int:
    """``workers`` from pipeline.yaml: a number, or ``auto`` (two from 4 cores up)."""
    if value == "auto":
        return 2 if (os.cpu_count() or 1) >= 4 else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"executor workers must be a whole number of 1 or more, or auto; got {value!r}. "
            "Fix it under executor: in pipeline.yaml."
        )
    return value


def _can_overlap(tasks: list[Any]) -> bool:
    """A task whose notebook runs in another working directory (papermill's ``cwd``)
    changes it for the whole process: such a pipeline builds one task at a time."""
    return not any("cwd" in (getattr(t, "executor_params", None) or {}) for t in tasks)


def _progress(total: int, show: bool) -> Any:
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total)


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


def _plan(task: Any, *, names: bool = False) -> tuple[str, str, list[str]]:
    """(executed notebook, kernel name, modules it imports) of a notebook task; with
    ``names``, also ``a.b`` for ``from a import b`` (see :func:`imported_modules`)."""
    from nbops.build.kernels import imported_modules

    notebook = _source_notebook(task)
    kernel = (
        task.kernelspec_name
        or notebook.get("metadata", {}).get("kernelspec", {}).get("name")
        or "python3"
    )
    return _output_notebook(task), kernel, imported_modules(notebook, names=names)


def _source_notebook(task: Any) -> dict[str, Any]:
    """The task's notebook as a dict, whatever its source format: ``.ipynb``, or a
    ``.py`` in the percent or light format (Ploomber has read it with jupytext)."""
    try:
        notebook = task.source.nb_obj_rendered
    except Exception:  # only the warm-up's guess of imports depends on it
        notebook = None
    if notebook:
        return dict(notebook)
    loc = task.source.loc
    if loc and str(loc).endswith(".ipynb") and Path(loc).is_file():
        return json.loads(Path(loc).read_text())
    return {}


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
