"""A real ``dask.distributed`` cluster on loopback for tests: one scheduler and two
workers, started as users start them (``dask scheduler``, ``dask worker``).

Import :func:`start_cluster` from a module-scoped fixture; the workers run in the
project's folder with the test environment (so they import this checkout's nbops).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import BIN, build_env, free_port, stop_process, stop_processes


@contextmanager
def start_cluster(logs: Path, *, cwd: Path, workers: int = 2) -> Iterator[str]:
    """Yield the scheduler's address once ``workers`` workers have joined; stop all after."""
    from distributed import Client

    address = f"tcp://127.0.0.1:{free_port()}"
    common = ["--no-dashboard", "--host", "127.0.0.1"]
    processes = [
        subprocess.Popen(
            [str(BIN / "dask"), "scheduler", "--port", address.rsplit(":", 1)[1], *common],
            stdout=(logs / "scheduler.log").open("wb"),
            stderr=subprocess.STDOUT,
            env=build_env(),
        )
    ]
    try:
        with Client(address, timeout="60s", set_as_default=False) as client:
            processes += [
                subprocess.Popen(
                    [str(BIN / "dask"), "worker", address, "--nthreads", "1", *common],
                    stdout=(logs / f"worker{i}.log").open("wb"),
                    stderr=subprocess.STDOUT,
                    env=build_env(),
                    cwd=cwd,
                )
                for i in range(workers)
            ]
            client.wait_for_workers(workers, timeout=120)
        yield address
    finally:
        # The workers together, then the scheduler (a worker that outlived it would
        # spend its stop trying to reach it).
        stop_processes(processes[1:])
        stop_process(processes[0])
