"""Forked kernels: a fresh kernel per notebook, without paying its imports again.

A kernel started by jupyter_client is a new Python process: about a second of CPU to
import IPython and ipykernel, then one to three more for the notebook's pandas,
scikit-learn, nbops and matplotlib. On a machine whose cores are busy, starting that
kernel ahead (:class:`nbops.build.kernels.KernelPool`) hides none of it.

Here one *template* process per build (``python -m nbops.build.forks``) imports
ipykernel and the modules the build's notebooks import, starts no thread and no zmq
context, and waits on a unix socket. For each notebook it forks a child that
becomes a fresh IPython kernel (``IPKernelApp``, the connection file the kernel manager
wrote, the notebook's working directory and environment, a session and process group
of its own). Every notebook still runs in a process of its own and nothing it does
reaches another notebook: only the imported modules are shared, copy-on-write, in the
state their import left them.

What the child resets so that it behaves as a freshly started kernel: the working
directory, the environment (``os.environ``), ``sys.argv``, stdin (``/dev/null``),
signal handlers, ``random``'s and numpy's global random state (seeded afresh from the
OS, as a new process would be: notebooks that set a seed get the same results, those
that do not are not correlated with each other), and matplotlib's backend when the
notebook's environment asks for another one than the template imported it with. The
kernel's zmq context, sockets and threads are created after the fork, in the child.
Native thread pools started by imports (OpenBLAS, jemalloc) have fork handlers of
their own and restart in the child when first used; the template checks that no
*Python* thread is running before every fork and refuses otherwise.

The template imports outside a kernel, so a module that decides something for good
on whether it runs in IPython decides "no": pandas' ``display.max_columns`` (how wide
DataFrames print) is set back to a kernel's in each child; any other module that asks
while the template imports it is named in a warning. A kernel leaves as Python does
(its threads joined, atexit handlers run, what the notebook left open collected) but
without tearing down every imported module, which costs about 0.6 s of CPU.

The template imports while it serves: a kernel is forked as soon as the modules of
its own notebook are imported (those first), and the rest of the build's are imported
while the first notebooks run. A forced build starts it while Ploomber still loads
the pipeline, before the build's modules are known: it imports ipykernel's, then
those it is sent (:meth:`KernelTemplate.want`). Before each fork it freezes what it
has imported (``gc.freeze``): a kernel's garbage collections, two full ones as IPython
exits, then skip those objects instead of visiting, and copying, every one of them.

The build side is :class:`nbops.build.kernels.ForkKernelManager`, jupyter_client's
kernel manager with a :class:`ForkProvisioner`: it writes the connection file as
usual, then asks the template to fork instead of running ``python -m
ipykernel_launcher``. The template
reaps its children and tells the provisioner their exit codes, so a kernel that dies
(``os._exit`` in a cell, a segfault) is seen as dead at once, as a Popen'ed one is.
When forking is unavailable (no ``os.fork``, not Linux), the kernel is not the
``python3`` kernel of this interpreter, or the template has died, the kernel starts
the usual way; the reason is logged.

The template also forks a child for a one-off call (:meth:`KernelTemplate.call`): once
the template has imported what it was asked to, the child prepares at once (a function
of an imported module), then waits on the caller's connection for the arguments of the
call proper (JSON), runs it in the caller's working directory and environment, and
answers with its result (JSON) and what it printed, which the caller prints. The build
records its run that way (:mod:`nbops.build.recorder`): the child opens the tracking
store while the notebooks run and publishes the record at the end, and MLflow, which
the gate notebook has the template import anyway, is not imported again in the build's
process. Such a child has a session of its own, starts with no atexit handler (the
template's are the template's), is reaped as kernels are, and leaves when the caller
goes without sending anything.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import gc
import io
import json
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

from jupyter_client.provisioning import LocalProvisioner

__all__ = ["ForkProvisioner", "KernelTemplate", "TemplateUnavailable", "fork_supported"]

log = logging.getLogger(__name__)

#: The kernel command forked kernels replace: jupyter_client's ``python3`` kernel.
_LAUNCHER = ["-m", "ipykernel_launcher"]
#: Imports every kernel does, whatever its notebook imports: ipykernel, and what its
#: start-up imports later (the debugger, history, magics; none starts a thread).
_KERNEL_MODULES = [
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.zmqshell",
    "ipykernel.debugger",
    "IPython.core.debugger",
    "IPython.core.completerlib",
    "IPython.extensions.storemagic",
    "sqlite3",
    "tornado.queues",
    "tornado.platform.asyncio",
]
#: How long a request to the template may wait for it (its imports included).
_TIMEOUT = 300.0
#: The template's own environment, on top of the build's (a kernel gets its notebook's).
#: debugpy's pydevd checks at import whether Python runs with frozen modules and says
#: so on stderr, four lines starting "Debugger warning"; a kernel imports it after its
#: stderr goes to the notebook, where nobody sees them, the template before, in the
#: build's terminal. The variable only turns that message into a debug log.
_TEMPLATE_ENV = {"PYDEVD_DISABLE_FILE_VALIDATION": "1"}


class TemplateUnavailable(RuntimeError):
    """The template process cannot fork a kernel; the message says why."""


def fork_supported() -> str | None:
    """None where kernels can be forked, else the reason they cannot."""
    if not hasattr(os, "fork"):
        return "this platform has no fork()"
    if not sys.platform.startswith("linux"):
        # macOS: system frameworks are not fork-safe once loaded (Objective-C runtime).
        return f"forked kernels are only used on Linux, not {sys.platform}"
    return None


# -- build side -------------------------------------------------------------------------


class KernelTemplate:
    """The build's template process: started with :meth:`start`, asked to fork kernels
    with :meth:`fork`, told to go with :meth:`close`.

    Requests go over a unix socket, one connection each, so any thread may ask. The
    template lives as long as its stdin pipe: if the build dies, it exits too, and its
    kernels follow (ipykernel exits when its parent does).
    """

    def __init__(self, process: subprocess.Popen[bytes], address: str) -> None:
        self.process = process
        self.address = address
        self.reason: str | None = None  # why it stopped forking, once it has
        self._told: set[str] = set()
        # Users that keep it past the build's close (see hold), and whether the
        # build closed it meanwhile.
        self._holds = 0
        self._closing = False
        self._hold_lock = threading.Lock()

    @classmethod
    def start(cls, modules: list[str], *, address: str) -> KernelTemplate:
        """Start a template that imports ``modules`` (without waiting for it); the
        first :meth:`fork` waits until its imports are done."""
        process = subprocess.Popen(
            [sys.executable, "-m", __name__, address, json.dumps(modules)],
            stdin=subprocess.PIPE,
            env={**os.environ, **_TEMPLATE_ENV},
            # Ctrl-C reaches the build, which shuts its kernels down; not the template.
            start_new_session=True,
        )
        return cls(process, address)

    @property
    def alive(self) -> bool:
        """Whether kernels can still be forked (logs why not, the first time not)."""
        code = self.process.poll()
        if code is not None:
            self._stop(f"the kernel template process exited with code {code}")
        return self.reason is None

    def _stop(self, reason: str, *, quiet: bool = False) -> None:
        if self.reason is None:
            self.reason = reason
            if not quiet:
                log.warning("starting kernels without forking: %s", reason)

    def fork(
        self, argv: list[str], *, cwd: str, env: dict[str, str], modules: Sequence[str] = ()
    ) -> int:
        """Fork a kernel run with ipykernel's ``argv``, once the template has imported
        ``modules`` (its notebook's: the template imports them first); its pid."""
        request = {"op": "fork", "argv": argv, "cwd": cwd, "env": env, "modules": list(modules)}
        reply = self._ask(request)
        if "pid" not in reply:
            # It will not get better (a thread started by an import): stop asking.
            self._stop(reply.get("error", "the template did not fork"))
            raise TemplateUnavailable(self.reason)
        for module in set(reply.get("looked_for_ipython", [])) - self._told:
            self._told.add(module)
            log.warning(
                "%s asked whether it runs in IPython when the kernel template imported it "
                "(outside a kernel); if notebooks that use it behave differently in this "
                "build, set fork_kernels: false under executor: in pipeline.yaml",
                module,
            )
        return int(reply["pid"])

    def want(self, modules: Sequence[str]) -> None:
        """Have the template import ``modules`` too (after what it has been asked for
        already): the build's, when it was started before they were known."""
        self._ask({"op": "import", "modules": list(modules)})

    def poll(self, pid: int) -> int | None:
        """The exit code of kernel ``pid`` (negative: killed by that signal), or None
        while it runs."""
        try:
            reply = self._ask({"op": "poll", "pid": pid})
        except TemplateUnavailable:
            # Its kernels were orphaned and exit on their own: alive while the pid is.
            return None if _running(pid) else -signal.SIGKILL
        return reply.get("exit")

    def hold(self) -> bool:
        """Keep the template after the build closes it, until :meth:`release`: its
        recording forks a child of it once the notebooks are done. False when it is
        closed or gone already (nothing to release then)."""
        with self._hold_lock:
            if self._closing or not self.alive:
                return False
            self._holds += 1
            return True

    def release(self) -> None:
        """Give back a :meth:`hold`; the last one closes the template if the build
        has asked for that meanwhile."""
        with self._hold_lock:
            self._holds -= 1
            close = self._holds == 0 and self._closing
        if close:
            self._close()

    def call(
        self,
        target: str,
        *,
        prepare: str | None = None,
        prepare_kwargs: dict[str, Any] | None = None,
    ) -> TemplateCall:
        """Fork a child off the template, once it has imported everything it was asked
        to (kernels' forks go first), to run ``target`` (``"module:function"``) later:
        the child runs ``prepare(**prepare_kwargs)`` at once, then waits for
        :meth:`TemplateCall.run` to send the arguments (JSON, both).

        Raises:
            TemplateUnavailable: the template is gone or refused to fork (why: the
                message).
        """
        conn = self._connect(quiet=True)
        try:
            request = {
                "op": "call",
                "target": target,
                "prepare": prepare,
                "prepare_kwargs": prepare_kwargs or {},
            }
            conn.sendall(json.dumps(request).encode() + b"\n")
            answer = _read_line(conn)
            if not answer:
                raise ConnectionError("the template closed the connection")
            reply = json.loads(answer)
        except (OSError, ValueError) as exc:
            conn.close()
            if self.process.poll() is not None:
                self._gone(exc, quiet=True)
            # Still busy (a timeout): no reason to stop forking kernels.
            raise TemplateUnavailable(f"the kernel template did not answer ({exc})") from exc
        if "pid" not in reply:
            conn.close()
            raise TemplateUnavailable(reply.get("error", "the template did not fork"))
        return TemplateCall(conn, int(reply["pid"]))

    def close(self) -> None:
        """Let the template go (it kills kernels still running) and reap it; once the
        last :meth:`hold` is released, if there are any."""
        with self._hold_lock:
            self._closing = True
            if self._holds:
                return
        self._close()

    def _close(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._stop("the build closed the template", quiet=True)

    def discard(self) -> None:
        """Stop a template that forked nothing, without waiting for its imports."""
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.process.kill()
        with contextlib.suppress(OSError):
            self.process.wait()
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        self._stop("the build did not use the template", quiet=True)

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            with self._connect() as conn:
                conn.sendall(json.dumps(request).encode() + b"\n")
                answer = _read_line(conn)
            if not answer:
                raise ConnectionError("the template closed the connection")
            return json.loads(answer)
        except (OSError, ValueError) as exc:
            self._gone(exc)

    def _connect(self, *, quiet: bool = False) -> socket.socket:
        """A connection to the template, waiting for it to listen (it may be starting)."""
        if self.reason is not None:
            raise TemplateUnavailable(self.reason)
        deadline = time.monotonic() + _TIMEOUT
        while True:
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.settimeout(_TIMEOUT)
            try:
                conn.connect(self.address)
                return conn
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                conn.close()
                # Not listening yet (still starting), or gone.
                if self.process.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.01)
                    continue
                self._gone(exc, quiet=quiet)
            except OSError as exc:
                conn.close()
                self._gone(exc, quiet=quiet)

    def _gone(self, exc: Exception, *, quiet: bool = False) -> NoReturn:
        code = self.process.poll()
        self._stop(
            f"the kernel template process exited with code {code}"
            if code is not None
            else f"the kernel template process did not answer ({exc})",
            quiet=quiet,
        )
        raise TemplateUnavailable(self.reason) from exc


class TemplateCall:
    """A child of the template waiting to run a call (:meth:`KernelTemplate.call`)."""

    def __init__(self, conn: socket.socket, pid: int) -> None:
        self.conn, self.pid = conn, pid

    def run(self, kwargs: dict[str, Any], *, cwd: str, env: dict[str, str]) -> dict[str, Any]:
        """Run the call with ``kwargs`` (JSON) in ``cwd`` with ``env`` and wait for it,
        however long it takes: ``{"result": ...}`` or ``{"raised": traceback}``, with
        ``"stdout"`` and ``"stderr"``, what it printed (its preparation's included).

        Raises:
            TemplateUnavailable: the child died (the call may have run in part).
        """
        try:
            with self.conn:
                self.conn.settimeout(None)
                request = {"kwargs": kwargs, "cwd": cwd, "env": env}
                self.conn.sendall(json.dumps(request).encode() + b"\n")
                answer = _read_line(self.conn)
            if not answer:
                raise ConnectionError("it closed the connection")
            return json.loads(answer)
        except (OSError, ValueError) as exc:
            raise TemplateUnavailable(
                f"the template's child {self.pid} did not answer ({exc})"
            ) from exc

    def cancel(self) -> None:
        """Let the child go without running the call."""
        with contextlib.suppress(OSError):
            self.conn.close()


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _forkable(cmd: list[str]) -> str | None:
    """None if ``cmd`` is this interpreter's ipykernel, which a fork can replace; else
    why not."""
    if len(cmd) < 3 or cmd[1:3] != _LAUNCHER:
        return f"the kernel is not started with python -m ipykernel_launcher ({cmd[:3]})"
    python = shutil.which(cmd[0]) or cmd[0]
    # The same interpreter in the same environment: two virtualenvs share one binary.
    try:
        same = os.path.realpath(python) == os.path.realpath(sys.executable) and os.path.samefile(
            os.path.dirname(os.path.abspath(python)),
            os.path.dirname(os.path.abspath(sys.executable)),
        )
    except OSError:
        same = False
    if not same:
        return f"the kernel runs another Python ({cmd[0]}) than the build ({sys.executable})"
    return None


class ForkProvisioner(LocalProvisioner):  # type: ignore[misc]
    """jupyter_client's local provisioner, forking the kernel from the template when
    it can (see the module docstring); Popen otherwise."""

    template: KernelTemplate | None = None
    forked: int | None = None  # the forked kernel's pid, until it is reaped

    @property
    def has_process(self) -> bool:
        return self.forked is not None or super().has_process

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        why = "no template" if self.template is None else _forkable(cmd)
        if why is None and self.template is not None:
            env = dict(kwargs.get("env") or os.environ)
            cwd = str(kwargs.get("cwd") or os.getcwd())
            try:
                modules = getattr(self.parent, "fork_modules", None) or []
                pid = self.template.fork(cmd[3:], cwd=cwd, env=env, modules=modules)
            except TemplateUnavailable as exc:
                why = str(exc)  # logged once, by the template
            else:
                self.forked = self.pid = self.pgid = pid  # a session of its own
                self.cwd = cwd
                return self.connection_info
        log.debug("kernel started without forking: %s", why)
        return await super().launch_kernel(cmd, **kwargs)

    async def poll(self) -> int | None:
        if self.forked is None:
            return await super().poll()
        assert self.template is not None
        return self.template.poll(self.forked)

    async def wait(self) -> int | None:
        if self.forked is None:
            return await super().wait()
        while (code := await self.poll()) is None:
            await asyncio.sleep(0.02)
        self.forked = None
        return code

    async def send_signal(self, signum: int) -> None:
        if self.forked is None:
            return await super().send_signal(signum)
        if await self.poll() is not None:
            return None  # reaped: the pid may be someone else's by now
        try:
            os.killpg(self.forked, signum)
        except OSError:
            os.kill(self.forked, signum)
        return None

    async def kill(self, restart: bool = False) -> None:
        if self.forked is None:
            return await super().kill(restart)
        with contextlib.suppress(ProcessLookupError):
            await self.send_signal(signal.SIGKILL)
        return None

    async def terminate(self, restart: bool = False) -> None:
        if self.forked is None:
            return await super().terminate(restart)
        with contextlib.suppress(ProcessLookupError):
            await self.send_signal(signal.SIGTERM)
        return None


# -- template side (python -m nbops.build.forks ADDRESS MODULES) ------------------------


def _template(address: str, modules: list[str]) -> dict[str, Any] | None:
    """Import ``modules`` while serving fork and poll requests, until stdin closes.
    Returns None in the template (which then exits) and the kernel's request in a
    forked child.

    The socket listens from the start: a fork request waits only for the modules its
    notebook imports (imported first), not for the whole build's, and the rest are
    imported while the first notebooks run.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # As ipykernel_launcher: the working directory is not on sys.path while it loads.
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    # What ipykernel sets before any notebook imports matplotlib (kernelapp's
    # init_gui_pylab): matplotlib reads it when imported.
    if not os.environ.get("MPLBACKEND"):
        os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    imported_with = os.environ.get("MPLBACKEND")
    pending = list(dict.fromkeys([*_KERNEL_MODULES, *modules]))
    # tqdm.auto (MLflow's import of it too) warns when ipywidgets is missing, once, when
    # imported: in a kernel into the notebook's output, here into the build's terminal.
    # Its choice is the kernel's either way (console bars). Only that message: a filter
    # set around the imports would also undo filters the imported modules set.
    warnings.filterwarnings("ignore", message=_NO_IPYWIDGETS)
    looked: set[str] = set()  # modules that asked for IPython while imported here

    tried: set[str] = set()

    def load(module: str) -> None:
        if module in pending:
            pending.remove(module)
        if module in tried:
            return
        tried.add(module)
        # A module that fails to import here fails again in the notebook's own cell,
        # with its own traceback.
        with contextlib.suppress(BaseException), _noting_ipython_lookups(looked):
            __import__(module)
        # What the module imports inside its functions, as it declares: imported once
        # here (after the pending modules) instead of in every notebook's kernel.
        later = getattr(sys.modules.get(module), "__warm_imports__", ())
        pending.extend(m for m in later if m not in pending and m not in sys.modules)

    for module in _KERNEL_MODULES:
        load(module)

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(address)
    listener.bind(address + ".tmp")
    listener.listen(16)
    os.rename(address + ".tmp", address)  # clients connect once it is listening
    children: dict[int, int | None] = {}

    def reap() -> None:
        for pid, code in list(children.items()):
            if code is None:
                with contextlib.suppress(ChildProcessError):
                    done, status = os.waitpid(pid, os.WNOHANG)
                    if done:
                        children[pid] = os.waitstatus_to_exitcode(status)

    #: calls asked for while imports were pending: forked once they are done, so the
    #: child has them and kernels' forks meanwhile do not wait for a call's imports
    waiting: list[tuple[socket.socket, dict[str, Any]]] = []

    while True:
        # Between two imports, only a look at the socket; once all are done, a wait.
        busy = pending or waiting
        readable, _, _ = select.select([listener, sys.stdin.buffer], [], [], 0 if busy else 0.5)
        reap()
        if sys.stdin.buffer in readable and not os.read(sys.stdin.fileno(), 4096):
            break  # the build closed the pipe, or died
        if listener in readable:
            conn, _ = listener.accept()
            request = json.loads(_read_line(conn) or b"{}")
            if request.get("op") == "call" and pending:
                waiting.append((conn, request))
                continue
        elif pending:
            load(pending[0])
            continue
        elif waiting:
            conn, request = waiting.pop(0)
        else:
            continue
        with conn:
            op = request.get("op")
            if op == "poll":
                reap()
                # A pid that is not ours was never a kernel of this build: gone.
                reply: dict[str, Any] = {"exit": children.get(request["pid"], -1)}
            elif op in ("fork", "call"):
                modules = request.get("modules") or []
                if op == "call":
                    modules = [
                        request[k].partition(":")[0]
                        for k in ("prepare", "target")
                        if request.get(k)
                    ]
                for module in modules:
                    load(module)
                    for declared in getattr(sys.modules.get(module), "__warm_imports__", ()):
                        load(declared)  # its notebook (or call) is about to need them
                threads = [
                    t.name for t in threading.enumerate() if t is not threading.main_thread()
                ]
                if threads:
                    reply = {"error": f"the template runs threads {threads}: forking is unsafe"}
                else:
                    sys.stdout.flush()  # nothing buffered here may print twice
                    sys.stderr.flush()
                    # What is imported so far leaves the garbage collector's reach: a
                    # kernel's collections (IPython runs two full ones as it exits) would
                    # otherwise visit every object of pandas, scikit-learn and MLflow,
                    # 0.3 s of CPU each, and copy every page they sit on.
                    gc.freeze()
                    pid = os.fork()
                    if pid == 0:
                        listener.close()
                        for other, _ in waiting:
                            other.close()
                        if op == "call":
                            request["fd"] = os.dup(conn.fileno())  # it answers the build
                        conn.close()
                        request["imported_with"] = imported_with
                        return request
                    children[pid] = None
                    reply = {"pid": pid, "looked_for_ipython": sorted(looked - _KNOWN_LOOKUPS)}
            elif op == "import":
                pending.extend(
                    m
                    for m in dict.fromkeys(request.get("modules") or [])
                    if m not in pending and m not in tried
                )
                reply = {}
            else:
                reply = {"error": f"unknown request {op!r}"}
            conn.sendall(json.dumps(reply).encode() + b"\n")
    for conn, _ in waiting:
        conn.close()
    # The build has gone: kernels it did not shut down go too.
    listener.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(address)
    reap()
    for pid, code in children.items():
        if code is None:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
    return None


#: Modules that ask for IPython when imported and whose answer :func:`_as_in_a_kernel`
#: corrects in the child (or whose question changes nothing for a notebook).
_KNOWN_LOOKUPS = {
    "pandas.core.config_init",
    "pandas.io.formats.printing",
    # Decides as in a kernel: it asks only once ipykernel.zmqshell is imported, which the
    # template does first, and then only whether the shell is Qt's or Spyder's.
    "tqdm.autonotebook",
}
#: tqdm's warning that ipywidgets is missing (tqdm.std.WARN_NOIPYW), as a regex.
_NO_IPYWIDGETS = r"IProgress not found"


@contextlib.contextmanager
def _noting_ipython_lookups(looked: set[str]) -> Iterator[None]:
    """Note the modules that ask whether they run in IPython while imported: outside a
    kernel the answer is no, and a module may decide something for good on it. The
    answer stays what it would be here (no shell); only the question is noted."""
    import builtins

    def noted() -> None:
        looked.add(sys._getframe(2).f_globals.get("__name__", "?"))

    def absent() -> Any:
        noted()
        raise NameError("name 'get_ipython' is not defined")

    ipython = sys.modules.get("IPython")
    real = getattr(ipython, "get_ipython", None)

    def recorded() -> Any:
        noted()
        return real() if real is not None else None

    builtins.get_ipython = absent  # type: ignore[attr-defined]
    if ipython is not None:
        ipython.get_ipython = recorded
    try:
        yield
    finally:
        del builtins.get_ipython  # type: ignore[attr-defined]
        if ipython is not None:
            ipython.get_ipython = real


def _as_in_a_kernel() -> None:
    """Redo, in the kernel, what a known module decided when the template imported it
    outside a kernel. nbops: its errors are shown as one paragraph in the kernel's shell,
    which did not exist yet. pandas: ``display.max_columns`` is 0 (fit the terminal) in a
    terminal and 20 in a kernel, which changes how every DataFrame prints."""
    short_errors = sys.modules.get("nbops._ipython")
    if short_errors is not None:
        short_errors.install()
    if "pandas.core.config_init" not in sys.modules:
        return
    with contextlib.suppress(Exception):  # pandas' private option registry
        from pandas._config import config as cf

        option = cf._registered_options["display.max_columns"]
        if option.defval == 0:
            cf._registered_options["display.max_columns"] = option._replace(defval=20)
            if cf.get_option("display.max_columns") == 0:
                cf.set_option("display.max_columns", 20)


def _become_kernel(request: dict[str, Any]) -> None:
    """In a forked child: become the kernel a fresh ``python -m ipykernel_launcher``
    with ``request['argv']`` would be, in the notebook's directory and environment."""
    os.setsid()
    # The handlers a new Python process starts with (the template ignores SIGINT).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    # ipykernel exits when this parent (the template) does, as when the build does.
    os.environ["JPY_PARENT_PID"] = str(os.getppid())
    _fresh_random_state()
    backend = os.environ.get("MPLBACKEND") or "module://matplotlib_inline.backend_inline"
    if "matplotlib" in sys.modules and backend != request.get("imported_with"):
        sys.modules["matplotlib"].rcParams["backend"] = backend
    import ipykernel_launcher

    # ipykernel read JPY_PARENT_PID when the template imported it: say it again.
    argv = [*request["argv"], f"--IPKernelApp.parent_handle={os.getppid()}"]
    sys.argv = [ipykernel_launcher.__file__, *argv]
    from ipykernel import kernelapp

    code: Any = 0
    try:
        # IPKernelApp.launch_instance, with the kernel's corrections before it starts.
        app = kernelapp.IPKernelApp.instance()
        app.initialize(argv)
        _as_in_a_kernel()
        app.start()
        _finish_control(app)
    except SystemExit as exc:
        code = exc.code
    except BaseException:
        traceback.print_exc()
        code = 1
    _exit(code)


#: How long a kernel that was asked to shut down waits for its control thread to
#: finish the request (it flushes the notebook's output and says it is idle).
_CONTROL_WAIT = 10.0


def _finish_control(app: Any) -> None:
    """Let the control thread finish the shutdown request before the kernel closes.

    The request stops the kernel's main loop, then the control thread flushes stdout
    and stderr through the IOPub thread. ipykernel's exit (``IPKernelApp.close``, an
    atexit handler) stops IOPub first and then waits for the control thread: when the
    main thread got there first, the flush waited for an IOPub that had stopped (10 s,
    ipykernel's ``flush_timeout``) and the kernel was killed 5 s after it was asked to
    go, in about one shutdown of 25. Stopped here, while IOPub still runs, the control
    thread finishes at once, and the close finds it gone.
    """
    thread = getattr(app, "control_thread", None)
    if thread is None or not thread.is_alive():
        return
    thread.stop()
    thread.join(timeout=_CONTROL_WAIT)


def _exit(code: Any) -> None:
    """Exit as Python does (wait for the notebook's threads, run the atexit handlers:
    IPython's clears the notebook's namespace, ipykernel's and the notebook's own),
    then skip the tear-down of every imported module, which costs a process that has
    imported pandas and scikit-learn about 0.6 s of CPU and leaves nothing behind."""
    try:
        threading._shutdown()  # type: ignore[attr-defined]  # as Py_FinalizeEx does
        atexit._run_exitfuncs()
        gc.collect()  # objects left for the tear-down: files a notebook did not close
    finally:
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            with contextlib.suppress(Exception):
                stream.flush()
        if code is None:
            status = 0
        elif isinstance(code, int):
            status = code
        else:
            print(code, file=sys.stderr)
            status = 1
        os._exit(status)


def _fresh_random_state() -> None:
    """Seed the global random generators from the OS, as a new process does: children
    of one template must not draw the same "random" numbers."""
    import random

    random.seed()
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()


def _call(request: dict[str, Any]) -> None:
    """In a forked child: run the request's ``prepare()``, then, once the build sends
    the arguments (over the connection, ``request["fd"]``), ``target(**kwargs)`` as a
    process started for it would (the working directory and environment sent, no
    atexit handler but its own, its threads joined), and answer with the result or the
    traceback, and what both printed. A build that goes away instead sends nothing:
    the child leaves."""
    import importlib

    def function(name: str) -> Any:
        module, _, attribute = name.partition(":")
        return getattr(importlib.import_module(module), attribute)

    os.setsid()  # a group of its own, as a kernel's: the template's kill at exit reaches it
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    atexit._clear()  # the template's handlers are not this call's to run
    _fresh_random_state()
    stdout, stderr = io.StringIO(), io.StringIO()
    reply: dict[str, Any] = {}
    with socket.socket(fileno=request["fd"]) as conn:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            # A preparation that fails is met again by the call itself, which says so.
            if request.get("prepare"):
                with contextlib.suppress(Exception):
                    function(request["prepare"])(**request["prepare_kwargs"])
            conn.settimeout(None)
            line = _read_line(conn)
            if not line:
                os._exit(0)  # the build went, or let the call go
            arguments = json.loads(line)
            os.chdir(arguments["cwd"])
            os.environ.clear()
            os.environ.update(arguments["env"])
            try:
                reply = {"result": function(request["target"])(**arguments["kwargs"])}
            except BaseException:
                reply = {"raised": traceback.format_exc()}
            try:
                threading._shutdown()  # type: ignore[attr-defined]  # as Py_FinalizeEx does
                atexit._run_exitfuncs()
            except BaseException:
                traceback.print_exc()
        reply.update(stdout=stdout.getvalue(), stderr=stderr.getvalue())
        try:
            data = json.dumps(reply, default=str).encode()
        except ValueError as exc:  # a result JSON cannot hold (a circular one)
            data = json.dumps({"raised": f"the call's result is not JSON: {exc}"}).encode()
        with contextlib.suppress(OSError):
            conn.sendall(data + b"\n")
    os._exit(0)


def main(argv: list[str]) -> None:
    address, modules = argv[0], json.loads(argv[1])
    request = _template(address, modules)
    if request is None:
        # Nothing to flush or finalize: leave without tearing the imports down.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    if request.get("op") == "call":
        _call(request)
    _become_kernel(request)


if __name__ == "__main__":
    main(sys.argv[1:])
