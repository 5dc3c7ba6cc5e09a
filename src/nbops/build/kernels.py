"""Warm kernels: a fresh kernel per notebook, started before the notebook needs it.

Running a notebook with papermill costs about a second to start its kernel and one to
three more for the notebook's first cell to import pandas, scikit-learn and matplotlib,
before any work is done. A :class:`KernelPool` starts the kernel of the *next*
notebook while the current one runs (on a thread of its own: handing out a kernel
never waits for the next one's start), with the modules that notebook imports already
imported (``IPKernelApp.exec_lines``; nothing is bound in the user's namespace).
Every notebook still gets a process of its own, so nothing leaks between notebooks;
only ``sys.modules`` is warm.

With ``fork_modules``, the pool's kernels (and papermill's, through
:class:`ForkKernelManager`) are forked from one template process that has imported
those modules once for the whole build (:mod:`nbops.build.forks`), so a kernel costs
neither the start of Python and ipykernel nor the imports again.

:class:`WarmEngine` is the papermill engine that takes the kernel from the pool (and
falls back to papermill's own start when there is none, or it does not match the
notebook's kernel or working directory). :mod:`nbops.build.executor` wires both into a
Ploomber build. Two fixed waits of papermill's go too: its client waited for IOPub to
be quiet for 0.2 s before the first cell (:class:`ReadyClient` is ready on the
kernel's answer), and it wrote the whole executed notebook at every cell's start and
end (it is written when it starts and ends, and at a cell once a save is due:
:class:`nbops.build.inprocess.SparseSaves`).

Every kernel started here talks to its notebook over IPC (unix sockets in a private
temporary folder, :class:`IPCKernelManager`), not TCP: jupyter_client picks free TCP
ports and the kernel binds them later, so kernels started at the same time on one
machine (builds side by side, CI runners, Airflow tasks) race for ports and fail
("Address already in use", then "Kernel died before replying to kernel_info"). IPC
also keeps ipykernel's "running over TCP without encryption" warning out of builds.
Where pyzmq has no IPC (Windows), kernels use TCP and a start that fails is retried.

This module wraps jupyter_client and papermill; it knows nothing of Ploomber.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import logging
import os
import queue
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import zmq
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.manager import AsyncKernelManager
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.utils import merge_kwargs, remove_args
from traitlets import default

from nbops.build.imports import imported_modules
from nbops.build.inprocess import SavingSparsely

__all__ = [
    "ForkKernelManager",
    "IPCKernelManager",
    "KernelPool",
    "ReadyClient",
    "WarmEngine",
    "fork_alone",
    "imported_modules",
    "ipc_by_default",
    "start_template",
    "warm_engine",
]

log = logging.getLogger(__name__)

#: How kernels started by nbops talk to their client: IPC wherever pyzmq supports it.
TRANSPORT = "ipc" if zmq.has("ipc") else "tcp"
#: Starts of a TCP kernel (no IPC) before giving up: its ports can be taken meanwhile.
_TCP_STARTS = 3

_sockets_lock = threading.Lock()
_sockets_dir: str | None = None
_kernel_numbers = itertools.count(1)


def _socket_prefix() -> str:
    """A fresh path prefix for one kernel's sockets (``<prefix>-<n>``), in a folder only
    this process can enter; short, as a unix socket path is limited to ~107 bytes."""
    global _sockets_dir
    with _sockets_lock:
        if _sockets_dir is None or not os.path.isdir(_sockets_dir):
            base = tempfile.gettempdir()
            if len(base) > 60 and os.path.isdir("/tmp"):
                base = "/tmp"
            _sockets_dir = tempfile.mkdtemp(prefix="nbk-", dir=base)  # mode 0700
            atexit.register(shutil.rmtree, _sockets_dir, ignore_errors=True)
        return os.path.join(_sockets_dir, f"k{next(_kernel_numbers)}")


#: Shell requests the kernel does not answer: a client never waits for them.
_NO_REPLY = frozenset({"comm_open", "comm_msg", "comm_close"})


class AwaitingShellChannel(AsyncZMQSocketChannel):
    """jupyter_client's shell channel, knowing which of its requests await a reply: the
    kernel is busy for its client until each is answered (see
    :meth:`IPCKernelManager.awaiting_reply`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.awaiting: set[str] = set()

    def send(self, msg: dict[str, Any]) -> None:
        header = msg.get("header") or {}
        if header.get("msg_type") not in _NO_REPLY and header.get("msg_id"):
            self.awaiting.add(header["msg_id"])
        super().send(msg)

    async def _recv(self, **kwargs: Any) -> dict[str, Any]:
        msg = await super()._recv(**kwargs)
        self.awaiting.discard((msg.get("parent_header") or {}).get("msg_id"))
        return msg


class ReadyClient(AsyncKernelClient):
    """jupyter_client's kernel client, ready as soon as its kernel is.

    Before a notebook's first cell, nbclient waits for the kernel: jupyter_client asks
    for ``kernel_info``, then waits 0.2 s for a message on IOPub (to know the
    subscription is connected) and drains IOPub until it has been quiet for another
    0.2 s: 0.4 s or more before every notebook, however ready its kernel. Here the
    wait ends when IOPub brings the kernel's "idle" status for that very request: the
    subscription is connected and every message of the request has arrived. A kernel
    that sends no such status is waited for as jupyter_client does.
    """

    async def _async_wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        seen = None
        while True:
            self.kernel_info()
            try:
                reply = await self.shell_channel.get_msg(timeout=1)
            except queue.Empty:
                reply = None
            if reply is not None and reply["msg_type"] == "kernel_info_reply":
                request = reply["parent_header"].get("msg_id")
                seen = await self._iopub_status(request, give_up=time.monotonic() + 1)
                if seen:
                    self._handle_kernel_info_reply(reply)
                    break
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")
        # Whatever else is on IOPub already (an earlier request's status): drop it.
        quiet = 0.0 if seen == "idle" else 0.2
        while True:
            try:
                await self.iopub_channel.get_msg(timeout=quiet)
            except queue.Empty:
                break

    wait_for_ready = _async_wait_for_ready

    @default("shell_channel_class")
    def _shell_channel_class_default(self) -> type:
        return AwaitingShellChannel

    @property
    def awaiting_reply(self) -> bool:
        """Whether a request sent on this client's shell channel is still unanswered."""
        channel = self._shell_channel
        return bool(getattr(channel, "awaiting", None))

    async def _iopub_status(self, request: str | None, *, give_up: float) -> str | None:
        """ "idle" once IOPub brings the kernel's idle status for ``request``; "some"
        when it brought other messages only, until ``give_up``; None if nothing came
        (the subscription is not connected yet) or if the kernel says the subscription
        has just connected (ipykernel 7's ``iopub_welcome``): what it published for
        ``request`` before then is lost, and the request is asked again. Waiting for
        it instead cost a second, and the test of this wait failed, whenever the
        welcome came after the request's status (seen 7 times in a row on a busy
        machine, and in 1 kernel start of 10 while the suite ran)."""
        seen = None
        while (left := give_up - time.monotonic()) > 0:
            try:
                msg = await self.iopub_channel.get_msg(timeout=left if seen else min(left, 0.2))
            except queue.Empty:
                return seen
            if msg["msg_type"] == "iopub_welcome":
                return None
            seen = "some"
            if (
                msg["msg_type"] == "status"
                and msg["content"].get("execution_state") == "idle"
                and msg["parent_header"].get("msg_id") == request
            ):
                return "idle"
        return seen


class IPCKernelManager(AsyncKernelManager):
    """jupyter_client's kernel manager, over IPC where available (see the module
    docstring), with :class:`ReadyClient` as its client; papermill's own start uses it
    too (``kernel_manager_class``).

    Its shutdown interrupts the kernel only when the kernel is busy: while one of its
    clients awaits a reply (a cell still running when a build is stopped, a cell over
    its timeout), so that the cell stops and the kernel can leave as asked, its exit
    handlers run. jupyter_client interrupts before every shutdown, and a kernel that
    is done still finishes the request it has just answered (papermill's last one asks
    for ``kernel_info``): the interrupt landed there in about one notebook of six on a
    busy machine, and ipykernel printed "[IPKernelApp] ERROR | KeyboardInterrupt caught
    in kernel." into a build that went well. Before a kill (``now=True``) the interrupt
    does nothing the kill does not: the kill reaches the kernel's process group too.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("transport", TRANSPORT)
        super().__init__(**kwargs)
        self._clients: weakref.WeakSet[Any] = weakref.WeakSet()
        self._interrupt_at_shutdown = True

    def client(self, **kwargs: Any) -> Any:
        client = super().client(**kwargs)
        self._clients.add(client)
        return client

    def awaiting_reply(self) -> bool:
        """Whether a client of this manager awaits the kernel's reply to a request:
        the kernel is busy with it (or about to be)."""
        return any(getattr(client, "awaiting_reply", False) for client in list(self._clients))

    async def _async_shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
        self._interrupt_at_shutdown = not now and self.awaiting_reply()
        try:
            await super()._async_shutdown_kernel(now=now, restart=restart)
        finally:
            self._interrupt_at_shutdown = True

    shutdown_kernel = _async_shutdown_kernel  # type: ignore[assignment]

    async def _async_interrupt_kernel(self) -> None:
        if not self._interrupt_at_shutdown:
            return  # called by the shutdown of a kernel that is not busy
        await super()._async_interrupt_kernel()

    interrupt_kernel = _async_interrupt_kernel  # type: ignore[assignment]

    @default("client_factory")
    def _client_factory_default(self) -> type:
        return ReadyClient

    @default("ip")
    def _ip_default(self) -> str:
        if self.transport == "ipc":
            return _socket_prefix()
        return super()._ip_default()


class ForkKernelManager(IPCKernelManager):
    """The IPC kernel manager, whose kernel is forked from ``template`` when there is
    one (set for the duration of a build, see :class:`KernelPool`); without one, or
    when the template cannot fork, the kernel starts the usual way."""

    template: ClassVar[Any] = None  # a nbops.build.forks.KernelTemplate
    #: What the notebook imports: the template imports these before it forks.
    fork_modules: list[str] | None = None

    async def _async_pre_start_kernel(self, **kw: Any) -> Any:
        from nbops.build.forks import ForkProvisioner

        template = type(self).template
        if self.provisioner is None and template is not None and template.alive:
            self.kernel_id = self.kernel_id or kw.pop("kernel_id", str(uuid.uuid4()))
            provisioner = ForkProvisioner(
                kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self
            )
            provisioner.template = template
            self.provisioner = provisioner
        return await super()._async_pre_start_kernel(**kw)


def _preload_lines(modules: Iterable[str]) -> list[str]:
    # One statement per module; a module that fails to import is left for the notebook
    # to fail on, in its own cell, with its own traceback.
    return [
        f"try:\n    import {m} as _nbops_warm\n    del _nbops_warm\nexcept Exception:\n    pass"
        for m in modules
    ]


@dataclass
class _Warm:
    key: str
    kernel_name: str
    cwd: str
    manager: Any
    modules: list[str] = field(default_factory=list)


class KernelPool:
    """Kernels started ahead of the notebooks that will use them.

    ``plan`` is the ordered list of ``(key, kernel_name, modules)`` for the notebooks
    of a build (``key``: the executed notebook's output path). :meth:`take` hands out
    the kernel started for a key and starts the next ``ahead`` ones. With
    ``fork_modules`` (a list, possibly empty), kernels are forked from a template
    process that imports those modules once (:mod:`nbops.build.forks`).
    """

    def __init__(
        self,
        plan: list[tuple[str, str, list[str]]],
        *,
        ahead: int = 1,
        fork_modules: list[str] | None = None,
        template: Any = None,
    ) -> None:
        self.plan = [(_key(k), name, modules) for k, name, modules in plan]
        self.ahead = max(0, ahead)
        self.fork_modules = fork_modules
        #: a nbops.build.forks.KernelTemplate: given (started early, see
        #: :func:`start_template`; the pool then owns it), or started by :meth:`start`
        self.template: Any = template
        self._outer_template: Any = None
        #: kernels started, or starting on the starter thread, by key
        self._started: dict[str, Future[_Warm | None]] = {}
        self._starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nbops-kernel-start")
        self._next = 0
        self._lock = threading.Lock()
        #: reaps retired kernels (and, once the pool is closed, the template), in order
        self._reaper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nbops-kernel-reap")
        self._reaping: list[Future[None]] = []
        self.hits = 0
        self.misses = 0

    def start(self) -> None:
        """Start the template (when forking) and the kernels of the first ``ahead``
        notebooks."""
        if self.fork_modules is None:
            if self.template is not None:
                self.template.close()  # started early for nothing
                self.template = None
        elif self.template is not None:
            # Started early, importing the kernel's modules: now it learns the build's
            # (on the starter thread, as it answers between two imports).
            self._starter.submit(self.template.want, self.fork_modules)
        else:
            self.template = start_template(self.fork_modules)
        if self.template is not None:
            self._outer_template = ForkKernelManager.template
            ForkKernelManager.template = self.template
        self._fill(self.ahead)

    def wait_started(self) -> None:
        """Wait until the kernels under way have started (or failed to): a caller that
        must keep its working folder until then (the kernel inherits it) can move on."""
        with self._lock:
            pending = list(self._started.values())
        for future in pending:
            future.exception()  # waits; a kernel that failed to start is papermill's to start

    def take(self, key: str, kernel_name: str, cwd: str) -> Any | None:
        """The started kernel manager for ``key``, or None (then papermill starts one).
        Waits for the kernel's start if it is under way; the next ``ahead`` kernels then
        start in the background, while this notebook runs."""
        key = _key(key)
        with self._lock:
            pending = self._started.pop(key, None)
            warm = None
            if pending is None and any(k == key for k, _, _ in self.plan[self._next :]):
                # Not started yet (ahead=0, or the order changed): start it now, here.
                self._next = next(i for i, (k, _, _) in enumerate(self.plan) if k == key)
                warm = self._launch(*self.plan[self._next])
                self._next += 1
            position = next((i for i, (k, _, _) in enumerate(self.plan) if k == key), None)
        if position is not None:
            self._fill(position + 1 + self.ahead)
        if pending is not None:
            warm = pending.result()
        if warm is None or warm.kernel_name != kernel_name or warm.cwd != cwd:
            if warm is not None:
                _shutdown(warm.manager)
            self.misses += 1
            return None
        self.hits += 1
        return warm.manager

    def retire(self, manager: Any, client: Any) -> None:
        """Ask a used kernel to shut down (as nbclient does, so its atexit handlers run)
        and reap it on the reaper thread: the next notebook does not wait for it. A kernel
        still busy for its notebook (the build was stopped mid-cell) is interrupted first,
        as jupyter_client does, or it would not leave until killed."""
        from jupyter_core.utils import run_sync

        busy = getattr(manager, "awaiting_reply", None)
        if busy is not None and busy():
            try:
                run_sync(manager.interrupt_kernel)()
            except Exception as exc:
                log.debug("could not interrupt a kernel: %s", exc)
        try:
            # On the manager's control socket, open until the kernel is reaped (the
            # client's is closed with no linger: a request still queued would be lost).
            run_sync(manager.request_shutdown)()
        except Exception as exc:
            log.debug("could not ask a kernel to shut down: %s", exc)
        if client is not None:
            with contextlib.suppress(Exception):
                client.stop_channels()
        try:
            with self._lock:
                self._reaping.append(self._reaper.submit(_reap, manager))
        except RuntimeError:  # retired after the pool was closed: reap it here
            _reap(manager)

    def close(self, *, wait: bool = True) -> None:
        """Shut down the kernels started for notebooks that did not run (a failed
        build), then let the template go once every retired kernel is reaped.

        With ``wait=False`` that last part (the last notebook's kernel finishing its
        exit, the template's) is left to the reaper thread and this returns at once: a
        build records its run meanwhile. The reaper is not a daemon: the process waits
        for it as it exits (:meth:`join`), so no kernel outlives the build.
        """
        self._starter.shutdown(wait=True)  # kernels still starting: let them, then stop them
        with self._lock:
            leftovers, self._started = list(self._started.values()), {}
        for pending in leftovers:
            warm = pending.result()
            if warm is not None:
                _shutdown(warm.manager)
        template, self.template = self.template, None
        if template is not None:
            if ForkKernelManager.template is template:
                ForkKernelManager.template = self._outer_template
            # After the kernels queued before it: the template kills kernels still
            # running when it goes, and the last ones may still be exiting.
            self._reaping.append(self._reaper.submit(template.close))
        self._reaper.shutdown(wait=False)
        if wait:
            self.join()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every retired kernel is reaped and the template (once closed) is
        gone; whether they are, within ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for future in list(self._reaping):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                future.result(timeout=left)
            except FutureTimeout:
                return False
            except Exception as exc:  # _reap and close log their own trouble
                log.debug("reaping a kernel failed: %s", exc)
        return True

    def _fill(self, upto: int) -> None:
        """Start the kernels of the plan up to position ``upto``, in order, on the
        starter thread: a fork waits for the template's imports, a kernel started the
        usual way for Python's start; neither should hold up the notebook that runs."""
        with self._lock:
            while self._next < min(upto, len(self.plan)):
                key, name, modules = self.plan[self._next]
                self._next += 1
                if key not in self._started:
                    self._started[key] = self._starter.submit(self._launch, key, name, modules)

    def _launch(self, key: str, kernel_name: str, modules: list[str]) -> _Warm | None:
        # The same arguments nbclient starts a kernel with, plus the imports.
        args = ["--HistoryManager.hist_file=:memory:"]
        args += [f"--IPKernelApp.exec_lines={json.dumps(_preload_lines(modules))}"]
        manager = _start(kernel_name, args, modules)
        if manager is None:
            log.debug("could not start a warm kernel for %s", key)
            return None
        return _Warm(key, kernel_name, os.getcwd(), manager, modules)


def start_template(modules: list[str] | None = None) -> Any | None:
    """Start a kernel template process (:mod:`nbops.build.forks`) importing ``modules``
    after the kernel's own, or None where kernels cannot be forked (the reason is
    logged). It does not wait for the imports: the first fork does."""
    from nbops.build.forks import KernelTemplate, fork_supported

    reason = fork_supported()
    if reason is not None:
        log.info("kernels start without forking: %s", reason)
        return None
    return KernelTemplate.start(list(modules or []), address=_socket_prefix() + "-template")


def _start(kernel_name: str, args: list[str], modules: Iterable[str] = ()) -> Any | None:
    """A started :class:`IPCKernelManager`, or None when the kernel cannot start (no
    such kernel: papermill then says so)."""
    from jupyter_core.utils import run_sync

    starts = 1 if TRANSPORT == "ipc" else _TCP_STARTS
    for attempt in range(1, starts + 1):
        manager = ForkKernelManager(kernel_name=kernel_name)
        manager.fork_modules = list(modules)
        try:
            run_sync(manager.start_kernel)(extra_arguments=args)
            if manager.transport == "tcp":
                # A port taken meanwhile kills the kernel before its first reply.
                client = manager.client()
                client.start_channels()
                try:
                    run_sync(client.wait_for_ready)(timeout=60)
                finally:
                    client.stop_channels()
            return manager
        except Exception as exc:
            log.debug("kernel start %d/%d failed: %s", attempt, starts, exc)
            _shutdown(manager)
    return None


#: Seconds a kernel asked to shut down has to exit before it is killed (jupyter_client's
#: ``shutdown_wait_time``).
SHUTDOWN_WAIT = 5.0


def _reap(manager: Any) -> None:
    """Wait for a kernel asked to shut down to exit, as jupyter_client does (up to
    :data:`SHUTDOWN_WAIT`), then kill it if it has not, and free its resources."""
    from jupyter_core.utils import run_sync

    deadline = time.monotonic() + SHUTDOWN_WAIT
    while time.monotonic() < deadline:
        try:
            if not run_sync(manager.is_alive)():
                break
        except Exception:
            break
        time.sleep(0.02)  # polling a process of another session
    _shutdown(manager)


def _key(path: str | os.PathLike[str]) -> str:
    return str(Path(path).resolve())


def _shutdown(manager: Any, *, now: bool = True) -> None:
    from jupyter_core.utils import run_sync

    try:
        run_sync(manager.shutdown_kernel)(now=now)
    except Exception as exc:
        log.debug("could not shut down a warm kernel: %s", exc)


_held = threading.local()


@contextlib.contextmanager
def bookkeeping(lock: threading.Lock) -> Iterator[None]:
    """Hold ``lock`` for a task's build, except while its notebook's cells run (see
    :class:`WarmEngine`): tasks built side by side overlap only in their kernels."""
    with lock:
        _held.lock = lock
        try:
            yield
        finally:
            _held.lock = None


@contextlib.contextmanager
def _cells_running() -> Iterator[None]:
    lock = getattr(_held, "lock", None)
    if lock is None:
        yield
        return
    _held.lock = None
    lock.release()
    try:
        yield
    finally:
        lock.acquire()
        _held.lock = lock


class WarmEngine(SavingSparsely, NBClientEngine):
    """papermill's nbclient engine, running the notebook in a warm kernel when the
    active pool has one for it (see :func:`warm_engine`), and writing the executed
    notebook when it ends rather than at every cell
    (:class:`~nbops.build.inprocess.SavingSparsely`). Without a pool, after
    :func:`fork_alone`, the kernel is forked from a template of this process's own."""

    pool: KernelPool | None = None
    #: fork kernels run without a pool from a template (see :func:`fork_alone`)
    alone: bool = False

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
        with _cells_running():
            return cls._execute(nb_man, kernel_name, **kwargs)

    @classmethod
    def _execute(
        cls,
        nb_man: Any,
        kernel_name: str,
        log_output: bool = False,
        stdout_file: Any = None,
        stderr_file: Any = None,
        start_timeout: int = 60,
        execution_timeout: int | None = None,
        **kwargs: Any,
    ) -> Any:
        output = getattr(nb_man, "output_path", None)
        manager = cls.pool.take(output, kernel_name, os.getcwd()) if cls.pool and output else None
        if manager is None:
            if cls.pool is None and cls.alone:
                kwargs.setdefault("kernel_manager_class", _forked_alone(nb_man.nb))
            kwargs.setdefault("kernel_manager_class", ForkKernelManager)
            return super().execute_managed_notebook(
                nb_man,
                kernel_name,
                log_output=log_output,
                stdout_file=stdout_file,
                stderr_file=stderr_file,
                start_timeout=start_timeout,
                execution_timeout=execution_timeout,
                **kwargs,
            )
        # As NBClientEngine, with the kernel manager given (nbclient then leaves the
        # kernel running, so it is shut down here).
        kwargs = remove_args(["input_path"], **kwargs)
        safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
        final_kwargs = merge_kwargs(
            safe_kwargs,
            timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
            startup_timeout=start_timeout,
            kernel_name=kernel_name,
            log=logging.getLogger("papermill"),
            log_output=log_output,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
        )
        client = PapermillNotebookClient(nb_man, km=manager, **final_kwargs)
        try:
            return client.execute()
        finally:
            cls.pool.retire(manager, client.kc)


class warm_engine:  # noqa: N801  (a context manager used like a function)
    """Within ``with warm_engine(pool):`` papermill's default engine is :class:`WarmEngine`
    using ``pool``; papermill's own engine is restored on exit, and the pool closed
    (``wait=False``: without waiting for the last kernels to exit, see
    :meth:`KernelPool.close`)."""

    def __init__(self, pool: KernelPool, *, wait: bool = True) -> None:
        self.pool = pool
        self.wait = wait

    def __enter__(self) -> KernelPool:
        self._previous = papermill_engines.get_engine(None)
        self._previous_pool = WarmEngine.pool
        WarmEngine.pool = self.pool
        papermill_engines.register(None, WarmEngine)
        self.pool.start()
        return self.pool

    def __exit__(self, *exc: object) -> None:
        papermill_engines.register(None, self._previous)
        WarmEngine.pool = self._previous_pool
        self.pool.close(wait=self.wait)


def fork_alone() -> None:
    """Fork the kernels of notebooks this process runs without a pool (``ploomber task
    NAME`` builds one task, without the executor) from a kernel template of its own,
    started for the first of them and closed as the process exits.

    A kernel forked from the template costs what a kernel started the usual way does
    (the template does its imports); what it saves is the build's process importing
    MLflow to record the task: a child of the template publishes the record
    (:mod:`nbops.build.recorder`), and the gate notebook's template has MLflow imported
    already."""
    WarmEngine.alone = True


def _forked_alone(notebook: Any) -> type:
    """The kernel manager class for a notebook run without a pool after
    :func:`fork_alone`: forked from this process's template, once the template has
    imported what the notebook imports; the template is started on first use."""
    modules = imported_modules(dict(notebook), names=True)
    if ForkKernelManager.template is None:
        from nbops.tracking.store import enabled

        # Its record is published from a child of the template: MLflow's import goes on
        # there while the notebook runs (after the fork, which waits only for the
        # notebook's own modules).
        template = start_template([*modules, *(["nbops.build.recorder"] if enabled() else [])])
        if template is None:
            return ForkKernelManager
        ForkKernelManager.template = template
        atexit.register(template.close)  # after the record is published from it
    return type("ForkKernelManager", (ForkKernelManager,), {"fork_modules": modules})


def ipc_by_default() -> None:
    """Make :class:`WarmEngine` papermill's default engine in this process, so that
    notebooks Ploomber runs without the executor (``ploomber task NAME`` builds one task
    directly) also get their kernel over IPC; with no pool, it is papermill's engine."""
    if papermill_engines.get_engine(None) is NBClientEngine:
        papermill_engines.register(None, WarmEngine)
