"""A papermill engine that runs a notebook in this process, with an IPython shell of its own.

A kernel is a Python process of its own: its start, ipykernel and the notebook's imports
cost 2.5-3 s of CPU for ``nbops score``'s small report, more than the report's work. The
:class:`InProcessEngine` runs the cells in an IPython ``InteractiveShell`` made for the
notebook in the calling process, where what the notebook imports is usually imported
already, and writes the outputs a kernel sends: streams, rich displays (``display``,
``clear_output``, display ids), a cell's result, an error with IPython's traceback. papermill
does the rest as for any engine (the injected parameters, each cell's metadata, the cells
marking a failure, :class:`papermill.PapermillExecutionError`), so the executed notebook
reads as one run by a kernel.

What differs from a kernel: the notebook shares the process: its modules, global state
(matplotlib's, pandas' options), working directory (papermill's ``cwd`` is the process's
while the notebook runs) and its crashes. It is for notebooks nbops runs on its own results
(``nbops score``'s report), not for a build's tasks, which keep a kernel each. Output written
to stdout or stderr by threads other than the one running the cell goes to this process's
streams, not into the notebook. Figures made with pyplot and left open are shown at the end
of their cell and closed, as the inline backend of a kernel does (unless ``MPLBACKEND``
names another backend, which a kernel would use).

This module wraps IPython and papermill; it knows nothing of Ploomber.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import io
import os
import platform
import sys
import threading
from collections.abc import Iterator
from typing import Any

import nbformat
from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from papermill.engines import Engine, NotebookExecutionManager, papermill_engines
from traitlets.config import Config

__all__ = ["ENGINE", "InProcessEngine", "SavingSparsely", "SparseSaves", "register"]

#: The engine's name for ``papermill.execute_notebook(engine_name=...)`` (see :func:`register`).
ENGINE = "nbops-inprocess"


def register() -> str:
    """Register the engine with papermill (again: harmless); return its name."""
    papermill_engines.register(ENGINE, InProcessEngine)
    return ENGINE


class SparseSaves(NotebookExecutionManager):
    """papermill's execution manager, writing the executed notebook at a cell's start
    and end only once ``autosave_cell_every`` seconds (30) have passed since it last
    did, as it does within a long cell. papermill writes the whole notebook twice per
    cell: in a build of quick notebooks, some 170 writes on the build's critical path.
    A long notebook still shows its progress in the file; a failed one is still written
    with its error, and every notebook once it ends."""

    _cell_save = False

    def save(self, **kwargs: Any) -> None:
        if self._cell_save:
            interval = self.autosave_cell_every
            if not interval or (self.now() - self.last_save_time).total_seconds() < interval:
                return
        super().save(**kwargs)

    @contextlib.contextmanager
    def _at_a_cell(self) -> Iterator[None]:
        self._cell_save = True
        try:
            yield
        finally:
            self._cell_save = False

    def cell_start(self, cell: Any, cell_index: int | None = None, **kwargs: Any) -> None:
        with self._at_a_cell():
            super().cell_start(cell, cell_index, **kwargs)

    def cell_complete(self, cell: Any, cell_index: int | None = None, **kwargs: Any) -> None:
        with self._at_a_cell():
            super().cell_complete(cell, cell_index, **kwargs)


class CellFailed(Exception):
    """A cell raised (its error is in its outputs): the notebook stops there."""


class SavingSparsely:
    """An engine's ``execute_notebook`` as papermill's :class:`~papermill.engines.Engine`
    has it, with :class:`SparseSaves` as the execution manager."""

    @classmethod
    def execute_notebook(
        cls,
        nb: Any,
        kernel_name: str,
        output_path: str | None = None,
        progress_bar: bool = True,
        log_output: bool = False,
        autosave_cell_every: int = 30,
        **kwargs: Any,
    ) -> Any:
        # papermill's Engine.execute_notebook, with the manager above.
        nb_man = SparseSaves(
            nb,
            output_path=output_path,
            progress_bar=progress_bar,
            log_output=log_output,
            autosave_cell_every=autosave_cell_every,
        )
        nb_man.notebook_start()
        try:
            cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
        finally:
            nb_man.cleanup_pbar()
            nb_man.notebook_complete()
        return nb_man.nb


class InProcessEngine(SavingSparsely, Engine):
    """papermill's engine interface over :class:`_Shell` (see the module docstring)."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
        # What nbclient records from a Python kernel's answer to kernel_info (the HTML
        # report highlights code by it).
        nb_man.nb.metadata["language_info"] = {
            "codemirror_mode": {"name": "ipython", "version": 3},
            "file_extension": ".py",
            "mimetype": "text/x-python",
            "name": "python",
            "nbconvert_exporter": "python",
            "pygments_lexer": "ipython3",
            "version": platform.python_version(),
        }
        # As papermill's nbclient engine: every cell started and completed in the
        # metadata, the first failing cell marked and the rest left unrun.
        with _Shell.session() as shell:
            for index, cell in enumerate(nb_man.nb.cells):
                try:
                    nb_man.cell_start(cell, index)
                    if cell.cell_type == "code":
                        shell.execute(cell)
                except CellFailed as exc:
                    nb_man.cell_exception(nb_man.nb.cells[index], cell_index=index, exception=exc)
                    break
                finally:
                    nb_man.cell_complete(nb_man.nb.cells[index], cell_index=index)
        return nb_man.nb


def _mime_bundle(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` as a kernel sends it: binary formats (PNG, JPEG) in base64 text."""
    return {
        mime: base64.b64encode(value).decode("ascii") if isinstance(value, bytes) else value
        for mime, value in data.items()
    }


class _Publisher(DisplayPublisher):
    """``display()``, ``update_display`` and ``clear_output`` into the running cell."""

    def publish(  # type: ignore[override]
        self,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        source: Any = None,
        *,
        transient: dict[str, Any] | None = None,
        update: bool = False,
        **kwargs: Any,
    ) -> None:
        self.shell.outputs.display(data, metadata or {}, transient or {}, update=update)

    def clear_output(self, wait: bool = False) -> None:
        self.shell.outputs.clear(wait=wait)


class _Hook(DisplayHook):
    """A cell's value (its last expression) as an ``execute_result``."""

    def write_output_prompt(self) -> None:
        pass  # a kernel prints no "Out[n]:"

    def write_format_data(
        self, format_dict: dict[str, Any], md_dict: dict[str, Any] | None = None
    ) -> None:
        self.shell.outputs.result(format_dict, md_dict or {}, self.prompt_count)

    def finish_displayhook(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()


class _Outputs:
    """The outputs of the cell running now, as nbclient builds them from a kernel's
    messages: a stream's writes joined while nothing comes between them, display ids
    kept across cells (an update changes every output shown with that id)."""

    def __init__(self) -> None:
        self.cell: list[Any] = []
        self._clear_next = False
        self._by_id: dict[str, list[Any]] = {}

    def start(self, outputs: list[Any]) -> None:
        self.cell, self._clear_next = outputs, False

    def _add(self, output: Any) -> None:
        if self._clear_next:
            self.cell.clear()
            self._clear_next = False
        self.cell.append(output)

    def stream(self, name: str, text: str) -> None:
        if not text:
            return
        last = self.cell[-1] if self.cell and not self._clear_next else None
        if last is not None and last.output_type == "stream" and last.name == name:
            last.text += text
        else:
            self._add(nbformat.v4.new_output("stream", name=name, text=text))

    def display(
        self,
        data: dict[str, Any],
        metadata: dict[str, Any],
        transient: dict[str, Any],
        *,
        update: bool,
    ) -> None:
        display_id = transient.get("display_id")
        data = _mime_bundle(data)
        if update:
            for output in self._by_id.get(display_id, []):
                output.data, output.metadata = data, metadata
            return
        output = nbformat.v4.new_output("display_data", data=data, metadata=metadata)
        if display_id:
            self._by_id.setdefault(display_id, []).append(output)
        self._add(output)

    def result(self, data: dict[str, Any], metadata: dict[str, Any], count: int) -> None:
        self._add(
            nbformat.v4.new_output(
                "execute_result", data=_mime_bundle(data), metadata=metadata, execution_count=count
            )
        )

    def error(self, ename: str, evalue: str, traceback: list[str]) -> None:
        self._add(nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=traceback))

    def clear(self, *, wait: bool) -> None:
        if wait:
            self._clear_next = True
        else:
            self.cell.clear()
            self._clear_next = False


class _Stream(io.TextIOBase):
    """``sys.stdout`` or ``sys.stderr`` while a cell runs: the running cell's writes go
    into its outputs, other threads' to the process's stream as before."""

    def __init__(self, name: str, outputs: _Outputs, previous: Any) -> None:
        self.name, self._outputs, self._previous = name, outputs, previous
        self._thread = threading.get_ident()

    def write(self, text: str) -> int:
        if threading.get_ident() != self._thread:
            return self._previous.write(text) if self._previous is not None else len(text)
        self._outputs.stream(self.name, str(text))
        return len(text)

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"


class _Shell(InteractiveShell):
    """IPython's shell, its displays, results, streams and errors going into the
    running cell's outputs (as ipykernel's shell sends them to a client)."""

    display_pub_class = _Publisher
    displayhook_class = _Hook

    def __init__(self, **kwargs: Any) -> None:
        # No history written to ~/.ipython for a notebook run by a command.
        super().__init__(config=Config({"HistoryManager": {"hist_file": ":memory:"}}), **kwargs)
        self.outputs = _Outputs()

    def enable_gui(self, gui: Any = None) -> None:
        pass  # no event loop: as a kernel running a notebook for papermill

    def _showtraceback(self, etype: Any, evalue: Any, stb: list[str]) -> None:
        # ipykernel's content for an error (the traceback as IPython formats it)
        self.outputs.error(str(etype.__name__), str(evalue), stb)

    def execute(self, cell: Any) -> None:
        """Run ``cell`` and put its outputs and execution count on it; raise
        :class:`CellFailed` when it raised (unless tagged ``raises-exception``, as
        nbclient allows)."""
        cell.outputs = []
        cell.execution_count = self.execution_count
        self.outputs.start(cell.outputs)
        figures = _open_figures()
        with self._streams():
            result = self.run_cell(cell.source, store_history=True)
            self._show_figures(figures)
        if not result.success and "raises-exception" not in cell.metadata.get("tags", []):
            raise CellFailed(f"cell {cell.execution_count} raised {result.error_in_exec!r}")

    @contextlib.contextmanager
    def _streams(self) -> Iterator[None]:
        saved = sys.stdout, sys.stderr
        sys.stdout = _Stream("stdout", self.outputs, saved[0])
        sys.stderr = _Stream("stderr", self.outputs, saved[1])
        try:
            yield
        finally:
            sys.stdout, sys.stderr = saved

    def _show_figures(self, before: set[int]) -> None:
        """pyplot figures the cell opened and left open: shown and closed, as the inline
        backend does at the end of a cell (figures shown with ``display`` are not pyplot's
        unless made with it)."""
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is None or os.environ.get("MPLBACKEND", _INLINE) != _INLINE:
            return  # a kernel keeps the backend MPLBACKEND names (Agg shows nothing)
        for number in pyplot.get_fignums():
            if number in before:
                continue
            figure = pyplot.figure(number)
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", bbox_inches="tight")
            self.outputs.display(
                {"image/png": buffer.getvalue(), "text/plain": repr(figure)}, {}, {}, update=False
            )
            pyplot.close(figure)

    @classmethod
    @contextlib.contextmanager
    def session(cls) -> Iterator[_Shell]:
        """A shell for one notebook; the process's IPython shell (if any), ``__main__``
        and hooks as they were afterwards."""
        previous = InteractiveShell._instance
        main = sys.modules.get("__main__")
        hooks = sys.displayhook, sys.excepthook
        shell = cls()
        atexit.unregister(shell.atexit_operations)  # nothing of it is left to the exit
        # display() and get_ipython() find the shell as the process's IPython.
        InteractiveShell._instance = cls._instance = shell
        # The notebook's folder first on the path, as a kernel started there has it.
        folder = os.getcwd()
        sys.path.insert(0, folder)
        try:
            yield shell
        finally:
            with contextlib.suppress(ValueError):
                sys.path.remove(folder)
            with contextlib.suppress(Exception):
                shell.history_manager.end_session()
            shell.user_ns.clear()
            cls._instance = None
            InteractiveShell._instance = previous
            if main is not None:
                sys.modules["__main__"] = main
            sys.displayhook, sys.excepthook = hooks


#: The backend ipykernel gives matplotlib unless MPLBACKEND names another.
_INLINE = "module://matplotlib_inline.backend_inline"


def _open_figures() -> set[int]:
    pyplot = sys.modules.get("matplotlib.pyplot")
    return set(pyplot.get_fignums()) if pyplot is not None else set()
