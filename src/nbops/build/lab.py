"""JupyterLab on a project (``make lab``): pipeline notebooks open with their inputs
wired in, and are saved as git holds them.

Ploomber's contents manager (``ploomber.jupyter``) adds a cell with the task's
``upstream`` and ``product`` paths when a notebook of ``pipeline.yaml`` is opened, and
drops it on save. :class:`PipelineContentsManager` is that manager, plus:

- a synchronous base (jupytext's, on jupyter_server's ``LargeFileManager``): Ploomber
  0.23 calls its base synchronously, so on jupyter_server 2's default asynchronous
  manager every request for a file fails;
- the project's other pipelines (``pipeline.NAME.yaml`` beside ``pipeline.yaml``, such
  as ``pipeline.monitor.yaml``): Ploomber injects for one spec only;
- a pipeline notebook is saved without outputs and without what injection added
  (:mod:`nbops.build.nbclean`); its executed copy with outputs is the task's product.

The project's ``.jupyter/jupyter_server_config.py`` selects it; ``make lab`` puts that
folder on ``JUPYTER_CONFIG_PATH``. This module is loaded by the Jupyter server only.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from jupytext import TextFileContentsManager
from ploomber.jupyter.manager import derive_class
from ploomber.sources.notebooksource import inject_cell

from nbops.build import nbclean
from nbops.project import in_folder

__all__ = ["PipelineContentsManager"]

_PloomberContentsManager: Any = derive_class(TextFileContentsManager)


class PipelineContentsManager(_PloomberContentsManager):
    """Ploomber's contents manager for every pipeline of the project."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._other_pipelines = _OtherPipelines(self.log)

    def get(self, path: str, content: bool = True, type: str | None = None, **kwargs: Any):
        model = super().get(path, content=content, type=type, **kwargs)
        if content and model["type"] == "notebook" and not self._in_main_pipeline(model["path"]):
            task = self._other_pipelines.task_for(self._os_path(model["path"]))
            if task is not None and not nbclean.problems(model["content"], kinds=("injected",)):
                self.log.info(f"[nbops] Injecting cell ({task.name})...")
                inject_cell(model=model, params=task._params)
        return model

    def save(self, model: dict[str, Any], path: str = "") -> dict[str, Any]:
        path = path.strip("/")
        if model.get("type") == "notebook" and model.get("content") is not None:
            if self.dag is None:
                self.load_dag(log=False)
            other = (
                None
                if self._in_main_pipeline(path)
                else self._other_pipelines.task_for(self._os_path(path))
            )
            if other is not None or self._in_main_pipeline(path):
                if nbclean.clean(model["content"]):
                    self.log.info(f"[nbops] Saving {path} without outputs or injected cell")
                if other is not None:
                    # As Ploomber does for pipeline.yaml: a notebook run here may have
                    # overwritten the products, so the next build reruns the task.
                    other.product.metadata.delete()
        return super().save(model, path)

    def _in_main_pipeline(self, path: str) -> bool:
        return self.dag is not None and self.dag_mapping is not None and path in self.dag_mapping

    def _os_path(self, path: str) -> Path:
        return Path(self.root_dir, path.strip("/")).resolve()


class _OtherPipelines:
    """The tasks of ``pipeline.NAME.yaml`` specs, by notebook; each spec is rendered
    again when it, its env file or one of its notebooks changes."""

    def __init__(self, log: Any) -> None:
        self._log = log
        self._cache: dict[Path, tuple[tuple[Any, ...], list[Path], dict[Path, Any]]] = {}

    def task_for(self, notebook: Path) -> Any | None:
        root = _project_root(notebook)
        if root is None:
            return None
        for spec in sorted(root.glob("pipeline.*.yaml")):
            task = self._tasks(spec).get(notebook)
            if task is not None:
                return task
        return None

    def _tasks(self, spec: Path) -> dict[Path, Any]:
        cached = self._cache.get(spec)
        if cached is not None and cached[0] == _signature(cached[1]):
            return cached[2]
        files = [spec, *_env_files(spec)]
        try:
            tasks = _render(spec)
        except Exception:
            self._log.exception(
                f"[nbops] {spec.name} did not render: its notebooks open without an "
                "injected cell until it does (try `ploomber status -e {spec.name}`)"
            )
            tasks = {}
        files += sorted(tasks)
        self._cache[spec] = (_signature(files), files, tasks)
        return tasks


def _project_root(notebook: Path) -> Path | None:
    for folder in notebook.parents:
        if (folder / "pipeline.yaml").is_file() or any(folder.glob("pipeline.*.yaml")):
            return folder
    return None


def _env_files(spec: Path) -> list[Path]:
    name = spec.name.removeprefix("pipeline.").removesuffix(".yaml")
    return [p for p in (spec.parent / f"env.{name}.yaml", spec.parent / "env.yaml") if p.is_file()]


def _signature(files: list[Path]) -> tuple[Any, ...]:
    return tuple((f, f.stat().st_mtime_ns if f.exists() else None) for f in files)


def _render(spec: Path) -> dict[Path, Any]:
    """Render the spec as Ploomber's Jupyter integration does: lazily, without hooks
    or static analysis. Returns the first task of each notebook."""
    from ploomber.spec import DAGSpec
    from ploomber.tasks.notebook import NotebookMixin

    with in_folder(spec.parent), warnings.catch_warnings():
        # env.yaml serves every pipeline; Ploomber warns about the keys this one ignores.
        warnings.filterwarnings("ignore", message="The following placeholders are declared")
        dag = DAGSpec(str(spec), lazy_import=True).to_dag()
        dag.on_render = None
        for name in dag._iter():
            task = dag[name]
            task._on_render = None
            if hasattr(task, "static_analysis"):
                task.static_analysis = False
        dag.render(force=True, show_progress=False)
    tasks: dict[Path, Any] = {}
    for name in dag._iter():
        task = dag[name]
        if isinstance(task, NotebookMixin) and task.source.loc is not None:
            tasks.setdefault(Path(spec.parent, task.source.loc).resolve(), task)
    return tasks
