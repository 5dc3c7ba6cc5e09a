"""Start-up of every Python process in the project's environment: no work at import that
the process may never use.

``ploomber``, ``papermill`` and ``nbformat`` import ``jsonschema``, whose format checker
imports ``rfc3987_syntax`` when it is installed (``jupyter-events`` asks for it through
``jsonschema[format-nongpl]``). That package compiles an Earley grammar when imported:
1.5 s of every ``ploomber build``, ``nbops monitor`` and Jupyter server start-up, for
the ``iri`` formats that no notebook or pipeline schema uses.

:func:`defer_iri_grammar` puts a stand-in for the package in ``sys.modules`` whose
functions compile the grammar on their first call: the same checks with the same
answers, paid only by a schema that uses them. ``python -m nbops.build.offline`` (run by
``make build``) copies this file into site-packages as ``_nbops_startup.py``, and a
``.pth`` file calls it at interpreter start-up, so it imports nothing but the standard
library (importing :mod:`nbops` costs 0.4 s).

:func:`defer_imports` does the same for the packages that ``import ploomber`` pulls in
only to bind a name: ``import pandas as pd`` and ``import pyarrow.parquet as pq`` in
ploomber's I/O helpers, ``import matplotlib.pyplot as plt`` in ploomber-engine's
profiler, ``import sqlalchemy`` in its SQL client, ``import requests`` and ``from
pyarrow.fs import HadoopFileSystem`` in papermill's I/O, ``from joblib import dump`` in
its serializers, ``import ipdb`` and ``from IPython.terminal.debugger import
TerminalPdb`` (prompt_toolkit) for its debug mode: 1.6 of the 2.2 s of
``import ploomber``, unused by a build whose notebooks run in kernels of their own; likewise jupytext's
contents managers for a Jupyter server (jupyter_server) and nbconvert's ``--post serve``
(tornado's web framework), BeautifulSoup, which nbconvert's HTML exporter imports for
reports with images, pyflakes, which checks a notebook when it runs, and the code of
``ploomber examples`` and ``ploomber scaffold``, which every command imports. In
a ``ploomber`` process (and only there: kernels import what they need for real, and
must, to start warm), each of those modules (:data:`DEFERRED`, exact names) is created
but runs its code on first use: the first attribute looked up, in whichever thread, runs
it once, its parent package first, under the import system's lock for the module. A
name taken with ``from X import name`` (listed beside the module) is a function that
imports the module when called. Any other submodule imported first runs its package
first, as Python would. There too, installed packages' entry points are read once
(:func:`cache_entry_points`), and the garbage collector waits until the pipeline is
loaded (:func:`collect_later`). ``NBOPS_DEFER_IMPORTS=off`` turns these off.

:func:`answer_no_op`: a ``ploomber build`` whose last check found nothing to do, and
nothing that answer rested on changed since, prints that answer and exits before
importing Ploomber (:mod:`nbops.build.noop`; ``NBOPS_NOOP_CACHE=off`` turns it off).

:func:`exit_without_collecting`: a ``ploomber`` process leaves what it holds at exit to
the operating system rather than to a last round of the garbage collector.
:func:`exit_at_once` (called by ``nbops score`` when it is done, not at start-up): the
process ends without Python's exit at all.

:func:`quiet_other_pipelines_sections`: no warning from Ploomber that env.yaml's
``monitor`` section (``pipeline.monitor.yaml``'s) is unused by ``pipeline.yaml``.

:func:`start` does all six; the ``.pth`` file calls it.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from typing import Any

#: The package that compiles a grammar when imported, and the module that does it.
PACKAGE = "rfc3987_syntax"
HELPERS = f"{PACKAGE}.syntax_helpers"


def _helpers() -> Any:
    import importlib

    return importlib.import_module(HELPERS)


def _parse(term: str, value: str) -> Any:
    return _helpers().parse(term, value)


def _is_valid_syntax(term: str, value: str) -> bool:
    return _helpers().is_valid_syntax(term, value)


_names: frozenset[str] | None = None


def _helper_names() -> frozenset[str]:
    """The names the real package has (``from .syntax_helpers import *``), read from the
    source without running it: a module scan (pickle's and skops' ``whichmodule`` call
    ``getattr`` on every module in ``sys.modules``) must not compile the grammar."""
    global _names
    if _names is None:
        import ast

        spec = importlib.util.find_spec(HELPERS)
        from pathlib import Path

        source = Path(spec.origin).read_text(encoding="utf-8") if spec and spec.origin else ""
        tree = ast.parse(source)
        found = set()
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                found.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                found.update(t.id for t in targets if isinstance(t, ast.Name))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                found.update((a.asname or a.name).split(".")[0] for a in node.names)
        _names = frozenset(n for n in found if not n.startswith("_"))
    return _names


def _getattr(name: str) -> Any:
    if name.startswith("_") or name not in _helper_names():
        raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")
    return getattr(_helpers(), name)


def defer_iri_grammar() -> bool:
    """Stand in for ``rfc3987_syntax`` until its grammar is needed; True if installed.

    Nothing happens if the package is missing or already imported.
    """
    if PACKAGE in sys.modules:
        return False
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return False
    if spec is None or not spec.submodule_search_locations:
        return False
    module = types.ModuleType(PACKAGE, "Deferred rfc3987_syntax (nbops.build.startup).")
    # The real package's folder: `import rfc3987_syntax.syntax_helpers` finds the real
    # submodule (and its sibling `utils`) through it.
    module.__path__ = list(spec.submodule_search_locations)
    module.__file__ = spec.origin
    module.__spec__ = spec
    module.parse = _parse  # type: ignore[attr-defined]
    module.is_valid_syntax = _is_valid_syntax  # type: ignore[attr-defined]
    module.__getattr__ = _getattr  # type: ignore[method-assign]
    sys.modules[PACKAGE] = module
    return True


# -- deferred imports in a ploomber process --------------------------------------------

#: Modules a ``ploomber`` process imports only to bind a name, with the names importers
#: take from them (``from joblib import dump``). Exact names: a submodule not listed runs
#: its package first.
DEFERRED: dict[str, tuple[str, ...]] = {
    "pandas": (),
    "pyarrow": (),
    "pyarrow.fs": ("FileSelector", "HadoopFileSystem"),  # papermill's HDFS handler
    "pyarrow.parquet": (),
    "matplotlib": (),
    "matplotlib.pyplot": (),
    "sqlalchemy": (),
    "requests": (),
    "joblib": ("dump", "load"),
    # the debuggers ploomber starts when asked to (`ploomber build --debug`)
    "IPython.terminal.debugger": ("TerminalPdb", "Pdb"),
    "ipdb": (),
    # jupytext's contents managers for a Jupyter server (jupyter_server, tornado's web
    # framework, prometheus); a ploomber process reads and writes notebooks only
    "jupytext.sync_contentsmanager": (
        "build_sync_jupytext_contents_manager_class",
        "TextFileContentsManager",
    ),
    "jupytext.async_contentsmanager": (
        "build_async_jupytext_contents_manager_class",
        "AsyncTextFileContentsManager",
    ),
    # ploomber's pyflakes check of a notebook, run when the notebook runs (not to load
    # the pipeline, decide what is up to date or find nothing to do)
    "ploomber.static_analysis.pyflakes": ("check_notebook",),
    # nbconvert's `--post serve` (a web server for the converted page)
    "nbconvert.postprocessors.serve": ("ServePostProcessor",),
    # nbconvert's HTML exporter parses HTML with it when a report embeds images
    "bs4": ("BeautifulSoup",),
    # `ploomber examples` (pygments' lexers) and `ploomber scaffold`, imported by the
    # command line for every command
    "ploomber.cli.examples": (),
    "ploomber_scaffold.scaffold": (),
}
#: The console scripts whose processes defer them.
PROGRAMS = ("ploomber",)
OFF_ENV = "NBOPS_DEFER_IMPORTS"


class _Pending:
    """A deferred module not run yet: its real loader, and whether it is running."""

    def __init__(self, loader: Any, names: tuple[str, ...]) -> None:
        self.loader, self.names, self.running = loader, names, False


_pending: dict[str, _Pending] = {}
_locks: dict[str, Any] = {}


def _module_lock(name: str) -> Any:
    """The import system's own lock for ``name`` (re-entrant, with deadlock detection),
    so a thread that imports the module while another runs it waits, as for any import."""
    import importlib._bootstrap as bootstrap

    manager = getattr(bootstrap, "_ModuleLockManager", None)
    if manager is not None:
        return manager(name)
    import threading  # pragma: no cover  (a Python without it)

    return _locks.setdefault(name, threading.RLock())  # pragma: no cover


def _run(module: types.ModuleType) -> bool:
    """Run a deferred module's code (its parent package's first); False when called
    from its own code while it runs (the module is then partly initialised, as usual)."""
    name = module.__dict__.get("__name__", "")
    if name not in _pending:
        return True
    with _module_lock(name):
        pending = _pending.get(name)
        if pending is None:
            return True  # another thread ran it meanwhile
        if pending.running:
            return False
        pending.running = True
        spec = module.__dict__.get("__spec__")
        try:
            parent = sys.modules.get(name.rpartition(".")[0])
            if isinstance(parent, _DeferredModule):
                _run(parent)
            for attr in pending.names:
                module.__dict__.pop(attr, None)
            if spec is not None:
                spec._initializing = True  # others' `import name` wait for the lock
            pending.loader.exec_module(module)
        except BaseException:
            # As a failed import: gone from sys.modules, raised where it is first used.
            if sys.modules.get(name) is module:
                del sys.modules[name]
            raise
        finally:
            if spec is not None:
                spec._initializing = False
            del _pending[name]
            if type(module) is _DeferredModule:
                module.__class__ = types.ModuleType
    return True


class _DeferredModule(types.ModuleType):
    """A module whose code runs when something it has not defined yet is looked up."""

    def __getattr__(self, attr: str) -> Any:
        spec = self.__dict__.get("__spec__")
        if attr == "__path__" and spec is not None and spec.submodule_search_locations is None:
            # `from module import name` asks whether the module is a package: its spec
            # says it is not, so the answer needs none of its code.
            raise AttributeError(f"module {self.__name__!r} has no attribute '__path__'")
        if not _run(self):
            name = self.__dict__.get("__name__")
            raise AttributeError(f"partially initialized module {name!r} has no attribute {attr!r}")
        return getattr(self, attr)

    def __dir__(self) -> list[str]:
        _run(self)
        return list(self.__dict__)


def _forwarder(module_name: str, attr: str) -> Any:
    def forward(*args: Any, **kwargs: Any) -> Any:
        import importlib

        module = importlib.import_module(module_name)
        if isinstance(module, _DeferredModule) and not _run(module):
            raise ImportError(f"{module_name}.{attr} called while {module_name} is imported")
        return getattr(module, attr)(*args, **kwargs)

    forward.__name__ = forward.__qualname__ = attr
    forward.__module__ = module_name
    forward.__doc__ = f"{module_name}.{attr}, imported on first call (nbops.build.startup)."
    return forward


class _DeferredLoader:
    """Creates the module as the real loader would, and leaves its code for later."""

    def __init__(self, real: Any, names: tuple[str, ...]) -> None:
        self.real, self.names = real, names

    def create_module(self, spec: Any) -> Any:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        # From here on the module looks imported the usual way.
        module.__spec__.loader = self.real  # type: ignore[union-attr]
        module.__loader__ = self.real
        for attr in self.names:
            setattr(module, attr, _forwarder(module.__name__, attr))
        _pending[module.__name__] = _Pending(self.real, self.names)
        module.__class__ = _DeferredModule


class _ParentFirstLoader:
    """A submodule (not deferred) of a deferred package not run yet: the package runs
    first, and when that imported the submodule, the import returns that module."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.existing: types.ModuleType | None = None
        self.spec: Any = None

    def create_module(self, spec: Any) -> Any:
        parent = sys.modules.get(spec.name.rpartition(".")[0])
        if isinstance(parent, _DeferredModule):
            _run(parent)
        existing = sys.modules.get(spec.name)
        if existing is not None:
            self.existing, self.spec = existing, existing.__dict__.get("__spec__")
            return existing
        spec.loader = self.real
        return self.real.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        if module is self.existing:
            module.__spec__ = self.spec  # the import system set ours; give its own back
            return
        if module.__loader__ is self:
            module.__loader__ = self.real
        self.real.exec_module(module)


class _DeferringFinder:
    """Finds the modules of :data:`DEFERRED` (and submodules of one not run yet)."""

    def __init__(self, names: dict[str, tuple[str, ...]]) -> None:
        self.names = dict(names)
        self._finding: set[str] = set()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname in self._finding:
            return None
        parent = fullname.rpartition(".")[0]
        deferred = fullname in self.names
        waiting = parent in _pending and not _pending[parent].running
        if not deferred and not waiting:
            return None
        spec = self._real_spec(fullname, path, target)
        if spec is None or spec.loader is None:
            return None
        if deferred:
            import importlib.machinery as machinery

            # Only Python source: an extension module's code runs when it is created.
            if not isinstance(spec.loader, machinery.SourceFileLoader):
                return None
            spec.loader = _DeferredLoader(spec.loader, self.names[fullname])
        else:
            spec.loader = _ParentFirstLoader(spec.loader)
        return spec

    def _real_spec(self, fullname: str, path: Any, target: Any) -> Any:
        self._finding.add(fullname)
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    return spec
            return None
        finally:
            self._finding.discard(fullname)


def defer_imports(
    names: dict[str, tuple[str, ...]] | None = None, *, programs: tuple[str, ...] | None = PROGRAMS
) -> bool:
    """In a process of one of ``programs`` (None: any), defer the modules ``names``
    (default :data:`DEFERRED`) to their first use; True if installed.

    Nothing happens with ``NBOPS_DEFER_IMPORTS=off``, or when already installed.
    """
    if not _wanted(programs):
        return False
    if any(isinstance(f, _DeferringFinder) for f in sys.meta_path):
        return False
    sys.meta_path.insert(0, _DeferringFinder(DEFERRED if names is None else names))
    if names is None:
        cache_entry_points()
    return True


# -- installed entry points, read once ------------------------------------------------

_entry_points: dict[Any, Any] = {}


def cache_entry_points() -> None:
    """``importlib.metadata.entry_points(group=...)`` answered from one reading of every
    installed distribution's entry points per ``sys.path``.

    Each call reads the entry points of every installed distribution (hundreds of
    files): nbconvert asks for its exporters, papermill for its engines and I/O
    handlers, jupyter_client for its provisioners, networkx for its backends and
    pydantic for its plugins, five groups and about 0.2 s of every ``ploomber`` command
    at seven tasks when read one group at a time. Nothing installs packages while a
    build loads, and an answer (a tuple of entry points) is not changed by its users;
    a selection is the one ``entry_points(group=...)`` makes, from the same list.
    Selections only: the mapping of every group (``entry_points()`` with no argument, a
    dict on Python 3.10 and 3.11) is not shared.
    """
    import importlib.metadata as metadata

    real = metadata.entry_points
    if getattr(real, "__nbops_cached__", False):
        return

    def entry_points(**params: Any) -> Any:
        if not params:
            return real()
        path = tuple(sys.path)
        key = (tuple(sorted(params.items())), path)
        found = _entry_points.get(key)
        if found is None:
            every = _entry_points.get(path)
            if every is None:
                every = _entry_points[path] = real()
            found = _entry_points[key] = every.select(**params)
        return found

    entry_points.__nbops_cached__ = True  # type: ignore[attr-defined]
    entry_points.__doc__ = real.__doc__
    metadata.entry_points = entry_points  # type: ignore[assignment]


def _wanted(programs: tuple[str, ...] | None) -> bool:
    """Whether this process is one of ``programs`` (None: any), with the deferring not
    turned off (``NBOPS_DEFER_IMPORTS=off``)."""
    import os

    if os.environ.get(OFF_ENV, "").strip().lower() in {"off", "0", "false", "no"}:
        return False
    argv = getattr(sys, "argv", None) or [""]
    return programs is None or os.path.basename(argv[0]) in programs


# -- a build with nothing to do -------------------------------------------------------


def answer_no_op(*, programs: tuple[str, ...] = PROGRAMS) -> None:
    """In a ``ploomber build`` process, answer "nothing to do" without loading the
    pipeline when nothing the last such answer rested on changed (the process then
    exits here); otherwise nothing happens."""
    argv = getattr(sys, "argv", None) or [""]
    import os

    if os.path.basename(argv[0]) not in programs or argv[1:] != ["build"]:
        return
    try:
        import importlib

        noop = importlib.import_module("nbops.build.noop")
    except Exception:  # nbops missing or broken: Ploomber builds, and says what is wrong
        return
    noop.answer_and_exit()


# -- leaving ------------------------------------------------------------------------


def exit_without_collecting(*, programs: tuple[str, ...] | None = PROGRAMS) -> bool:
    """In a process of one of ``programs`` (None: any), leave the objects alive at exit
    to the operating system instead of having the garbage collector visit them; True
    if arranged.

    A ``ploomber`` process has imported Ploomber, papermill, Jupyter's client, and for
    a build MLflow and SQLAlchemy: as it exits, Python tears the modules down and runs
    full collections over what is left, about 0.4–0.6 s of CPU (a fifth of ``ploomber
    status``; five seconds of a build's wall time on a busy machine) that frees memory
    the process is about to give back. :func:`gc.freeze` as the last exit handler
    (registered first) takes those objects out of the collector's reach: the rest of
    the exit is Python's own (threads joined, exit handlers run, the exit status, the
    standard streams flushed), and objects still alive are left unfinalized, as Python
    allows. One exception, as a file's finalizer writes what it buffered: files still
    open for writing are flushed first (about a sixth of what the collections cost).
    Nothing happens with ``NBOPS_DEFER_IMPORTS=off``.
    """
    if not _wanted(programs):
        return False
    import atexit

    atexit.unregister(_leave_to_the_system)  # once
    atexit.register(_leave_to_the_system)
    return True


def exit_at_once(code: int = 0, *, programs: tuple[str, ...] = ("nbops",)) -> None:
    """In a process of one of ``programs``, end it here with ``code``: the standard
    streams and logging's handlers flushed, nothing else run; elsewhere (a test calling
    the command in its own process) return.

    For a command that has closed, renamed and recorded everything it wrote
    (``nbops score``): Python's own exit (threads joined, exit handlers, module
    teardown, then the allocator giving back each block) cost 0.25 s of CPU and up to
    0.5 s of wall time after its last line. Exit handlers registered by libraries are
    not run: that is the point, and a command that needs one must not call this.
    ``NBOPS_DEFER_IMPORTS=off`` turns it off, as it does :func:`exit_without_collecting`."""
    if not _wanted(programs):
        return
    import contextlib
    import logging
    import os

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # closed or broken: as Python's exit would
            stream.flush()
    logging.shutdown()
    os._exit(code)


def _leave_to_the_system() -> None:
    """Flush the files still open, then put every object out of the collector's reach
    (see :func:`exit_without_collecting`)."""
    import gc
    import io

    # Asked per type, not per object: the I/O bases are ABCs, whose isinstance check
    # cost 0.4 s of CPU over the 600,000 objects `nbops score` leaves (0.1 s this way).
    files: dict[type, bool] = {}
    for obj in gc.get_objects():
        kind = type(obj)
        writes = files.get(kind)
        if writes is None:
            writes = files[kind] = issubclass(kind, (io.TextIOBase, io.BufferedIOBase))
        if writes:
            try:
                if not obj.closed and obj.writable():
                    obj.flush()
            except Exception:  # closed or broken meanwhile: as its finalizer would
                pass
    gc.freeze()


# -- no collections while the pipeline loads ----------------------------------------

#: Seconds after which the collector runs again in a ``ploomber`` process that reached
#: none of the points that turn it back on (a pipeline without nbops' executor or hooks,
#: ``ploomber interact``).
COLLECT_AFTER = 5.0
_waiting: list[Any] = []  # the timer, while the collector waits
_fork_handler: list[bool] = []


def collect_later(*, programs: tuple[str, ...] | None = PROGRAMS) -> bool:
    """In a process of one of ``programs`` (None: any), no garbage collection until the
    pipeline is loaded; True if arranged.

    Loading a pipeline imports Ploomber, papermill, nbconvert and Jupyter's client and
    builds the DAG: objects that all stay alive, which the collector visits over and
    over as they pile up (about 330 collections, 0.2–0.3 s of the 1.1 s of CPU of
    ``ploomber status`` at the reference pipeline). The collector waits until
    :func:`out_of_reach` (called when the build starts running tasks and when it
    records its run) puts what is alive out of its reach and turns it back on, or
    :data:`COLLECT_AFTER` seconds at the latest; a forked child collects as usual.
    Nothing happens with ``NBOPS_DEFER_IMPORTS=off``.
    """
    if not _wanted(programs):
        return False
    import gc

    if _waiting or not gc.isenabled():
        return False
    import os
    import threading

    timer = threading.Timer(COLLECT_AFTER, collect_again)
    timer.daemon, timer.name = True, "nbops-collect-later"
    _waiting.append(timer)
    gc.disable()
    timer.start()
    if not _fork_handler and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=collect_again)
        _fork_handler.append(True)
    return True


def collect_again() -> bool:
    """The collector runs again if :func:`collect_later` held it back, with what is
    alive now out of its reach (:func:`gc.freeze`); True if it was waiting."""
    try:
        timer = _waiting.pop()
    except IndexError:  # not waiting, or another thread turned it back on
        return False
    import gc

    timer.cancel()
    gc.freeze()
    gc.enable()
    return True


def out_of_reach(*, programs: tuple[str, ...] | None = PROGRAMS) -> bool:
    """In a process of one of ``programs``: what is alive now (the loaded pipeline, the
    imported packages) leaves the collector's reach, which then runs again if it
    waited; True if done. Called as a ``ploomber build`` starts its tasks and as it
    records its run: a full collection then would visit every object of Ploomber,
    MLflow and SQLAlchemy (up to 0.5 s of the recording), for objects that live until
    the process exits."""
    if not _wanted(programs):
        return False
    import gc

    if not collect_again():
        gc.freeze()
    return True


def pipeline_loaded() -> bool:
    """:func:`out_of_reach`, the collector turned back on by whichever copy of this
    module holds it back: the one in site-packages (``_nbops_startup``) that the
    ``.pth`` file ran, or this one."""
    for name in ("_nbops_startup", __name__):
        hook = sys.modules.get(name)
        if hook is not None and getattr(hook, "_waiting", None):
            hook.collect_again()
    return out_of_reach()


# -- a warning about the project's layout -------------------------------------------

#: env.yaml's sections for the project's other pipeline (``pipeline.monitor.yaml``,
#: ``nbops monitor``): one env.yaml holds the settings of both.
OTHER_PIPELINES_SECTIONS = frozenset({"monitor"})


def quiet_other_pipelines_sections(*, programs: tuple[str, ...] = PROGRAMS) -> bool:
    """In a process of one of ``programs``, no warning that env.yaml's sections for the
    project's other pipeline are unused; True if arranged.

    Ploomber checks that every top-level key of env.yaml is used by the pipeline it
    loads, and warns otherwise, in every command on ``pipeline.yaml`` ("The following
    placeholders are declared in the environment but unused in the spec:
    {'monitor'}"): the ``monitor`` section is ``pipeline.monitor.yaml``'s. The warning
    stays for any other set of keys, a misspelt section among them.
    """
    argv = getattr(sys, "argv", None) or [""]
    import os

    if os.path.basename(argv[0]) not in programs:
        return False
    import re
    import warnings

    unused = "{" + ", ".join(repr(k) for k in sorted(OTHER_PIPELINES_SECTIONS)) + "}"
    warnings.filterwarnings(
        "ignore",
        message=re.escape(
            f"The following placeholders are declared in the environment but unused in the spec: {unused}"
        )
        + "$",
        category=UserWarning,
    )
    return True


def start() -> None:
    """What the environment's ``.pth`` file runs in every interpreter."""
    answer_no_op()
    quiet_other_pipelines_sections()
    defer_iri_grammar()
    defer_imports()
    exit_without_collecting()
    collect_later()
