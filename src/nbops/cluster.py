"""Parts of a job on an existing ``dask.distributed`` cluster: reaching the scheduler,
splitting a Parquet file into parts by its row groups, and naming a worker's failure.

Shared by ``nbops score --scheduler`` and ``nbops monitor --data FILE --scheduler``: the
job's own code runs on the workers, a part each, and the parts' results are joined on
this machine in the file's order. Imports only :mod:`nbops.errors` (and Dask, when a
job asks for a cluster).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from nbops.errors import ConfigError, NbopsError

__all__ = [
    "CONNECT_SECONDS",
    "WORKER_SECONDS",
    "connect",
    "on_worker",
    "parquet_parts",
    "part_result",
    "require_parquet",
]

#: Seconds to reach the scheduler, then to wait for its first worker.
CONNECT_SECONDS = 10
WORKER_SECONDS = 30
#: Loaded once per worker process (a model, its contract), by a key the job chooses.
_CACHE: dict[Any, Any] = {}
T = TypeVar("T")


def connect(address: str, *, here: str) -> Any:
    """A client of the scheduler at ``address`` with at least one worker.

    ``here`` says what leaving out ``--scheduler`` does (``"score on this machine"``).

    Raises:
        ConfigError: the scheduler cannot be reached, or has no worker; the address has
            credentials in it (refused unused and unshown).
    """
    _no_credentials(address)
    try:
        from distributed import Client
    except ImportError as exc:  # pragma: no cover - a dependency of nbops
        raise ConfigError(
            "--scheduler needs dask.distributed: pip install 'dask[distributed]'."
        ) from exc
    try:
        client = Client(address, timeout=f"{CONNECT_SECONDS}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConfigError(
            f"Cannot reach the Dask scheduler at {address} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no answer'}). Check the address "
            "(tcp://HOST:PORT, port 8786 by default) and that `dask scheduler` runs there "
            f"with workers (`dask worker tcp://HOST:PORT`), or leave out --scheduler to {here}."
        ) from exc
    try:
        client.wait_for_workers(1, timeout=WORKER_SECONDS)
    except (OSError, TimeoutError) as exc:
        client.close()
        raise ConfigError(
            f"The Dask scheduler at {address} has no worker after {WORKER_SECONDS} s: start "
            f"some with `dask worker {address}` (with nbops installed), or leave out "
            f"--scheduler to {here}."
        ) from exc
    return client


def _no_credentials(address: str) -> None:
    """Refuse an address with a user, password or token before its ``@``, without
    repeating it: a Dask address has none (TLS certificates are set in Dask's
    configuration), and Dask's own error would print it, into the terminal, CI logs and
    the failed run's notebook."""
    _, scheme, rest = address.partition("://")
    host = (rest if scheme else address).split("/", 1)[0]
    if "@" in host:
        raise ConfigError(
            "The --scheduler address has a user name, password or token in it (the part "
            "before '@'), which Dask addresses never have, so it is neither used nor shown. "
            "Give the scheduler as tcp://HOST:PORT, or tls://HOST:PORT with the TLS "
            "certificates in Dask's configuration (distributed.comm.tls)."
        )


def require_parquet(source: Path, *, here: str) -> None:
    """A cluster splits a file by its Parquet row groups; text has no such parts."""
    if source.suffix.lower() not in {".parquet", ".pq"}:
        raise ConfigError(
            f"--scheduler splits a Parquet file by its row groups, and '{source}' is text. "
            f"Convert it to Parquet first, or leave out --scheduler to {here}."
        )


def parquet_parts(source: Path, rows: int) -> list[tuple[list[int], int]]:
    """Consecutive row groups of at least ``rows`` rows each, with the rows before them."""
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(source).metadata
    parts: list[tuple[list[int], int]] = []
    groups: list[int] = []
    offset = size = 0
    for i in range(metadata.num_row_groups):
        groups.append(i)
        size += metadata.row_group(i).num_rows
        if size >= rows:
            parts.append((groups, offset))
            offset, groups, size = offset + size, [], 0
    if groups:
        parts.append((groups, offset))
    return parts


def on_worker(key: Any, load: Callable[[], T]) -> T:
    """``load()`` once per worker process for ``key`` (e.g. a model, hash checked)."""
    if key not in _CACHE:
        _CACHE[key] = load()
    return _CACHE[key]  # type: ignore[no-any-return]


def part_result(future: Any, address: str, *, needs: str) -> Any:
    """The result of a part; a worker's failure as one paragraph (``needs``: what the
    workers must see at the same paths as here)."""
    try:
        return future.result()
    except NbopsError:
        raise  # a worker's own one-paragraph error (no model, unreadable file, ...)
    except Exception as exc:
        raise NbopsError(
            f"A Dask worker of {address} failed on part of the file ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). Workers need nbops installed and "
            f"{needs} at the same paths as here."
        ) from exc
