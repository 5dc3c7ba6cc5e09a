"""``nbops score``: a CSV or Parquet file scored by a registered model, in bounded memory.

The job reads the file a chunk at a time (Parquet record batches, CSV chunks), types and
validates each chunk with the prediction service's own rules
(:func:`nbops.serving.validation.validate_frame`, the raw-text typing of ingest), scores
the valid rows with the service's scorer (the compiled model when it matches the
pipeline, scikit-learn otherwise), and appends them to the output. Rows that fail go to
a rejects file with their row number and reasons, and are counted; ``max_bad_rows``
stops the job. The model is loaded from the registry as the service loads it (the
hash of ``model.skops`` checked, skops' trust list), or, for a linear model registered
with its compiled scorer, that scorer from inside the same hash-checked file without
scikit-learn (:mod:`nbops.serving.stored`). Memory is one chunk plus the model,
whatever the file size.

Nothing half-written looks complete: output and rejects are written under temporary
names in the output's folder and renamed at the end. A finished job is recorded in the
tracking store as a run (trigger ``score``) with the model, the input and output
content hashes, the counts, the share of each prediction, the drift of a uniform sample
of the rows against the model's reference profile (:mod:`nbops.monitoring.drift`) and
the time taken, listed by ``nbops runs list``.

Every job also leaves a report a reviewer reads: the project's
``notebooks/score/report.ipynb`` is run by papermill on the job's summary (counts,
prediction shares, drift, the rejects file), in this process
(:mod:`nbops.build.inprocess`: no kernel to start), and rendered with the build reports'
exporter, as ``<output stem>.report.ipynb`` and ``.report.html`` next to the output,
and both are stored with the run. Scoring stays streamed here; the notebook reads only
the small summary. A project without the notebook (made before it was in the template,
or adopted) scores as before, with a note that no report was made (``report_note``).

With a ``dask.distributed`` scheduler the same chunks are scored on its workers, a part
of the file's row groups each, and joined here in input order (``_on_cluster``).

Example:
    >>> result = score_file(root, "customers.csv", "scores.parquet", model_name="churn")  # doctest: +SKIP
    >>> result.scored, result.rejected
    (99_998, 2)
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from nbops.data.sources import CSV_SEPARATORS, PARQUET_SUFFIXES
from nbops.errors import DataError, DataSourceError, NbopsError, ReleaseError
from nbops.serving.labels import label_names
from nbops.serving.validation import validate_frame

if TYPE_CHECKING:  # imported where the model is loaded: it brings in scikit-learn
    from nbops.serving.model import ServedModel

__all__ = ["ScoreResult", "score_file"]

#: Rows per chunk by default: vectorised work stays efficient, memory stays small.
CHUNK_ROWS = 262_144
#: Rows the compiled scorer takes at a time within a chunk (see :func:`_blocks`).
BLOCK_ROWS = 8192
#: Threads scoring chunks side by side at most, by default (one per core up to this).
WORKERS = 4
#: Scored rows kept (a uniform sample of the file) to measure drift against the profile.
SAMPLE_ROWS = 100_000
_CSV = CSV_SEPARATORS  # what ingest reads, scoring reads
_PARQUET = PARQUET_SUFFIXES
_OUT = {".csv", ".parquet", ".pq"}


@dataclass
class ScoreResult:
    """What a scoring job did (also what its run in the tracking store holds)."""

    model_name: str
    model_version: str
    alias: str
    input: str
    output: str
    rejects: str | None
    rows: int
    scored: int
    rejected: int
    seconds: float
    input_sha256: str
    output_sha256: str
    scorer: str
    #: the dask.distributed scheduler the job ran on (None: this machine)
    scheduler: str | None = None
    #: classification: share of scored rows per predicted label; regression: mean prediction
    predictions: dict[str, float] = field(default_factory=dict)
    #: the batch against the model's reference profile (:meth:`DriftReport.to_dict`), on
    #: a uniform sample of the scored rows; empty when the model has no profile
    drift: dict[str, Any] = field(default_factory=dict)
    #: the HTML report of the job (its executed notebook beside it); None: see report_note
    report: str | None = None
    #: why no report was made (empty when there is one)
    report_note: str = ""
    run: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Plan:
    """What is read and written, fixed before the first chunk."""

    features: list[str]
    ids: list[str]  # input columns the model ignores (IDs): passed through
    labels: list[str]  # classification: the training label per estimator class
    text: list[str]  # features read from a CSV as text whatever they look like (dates)
    categories: list[str]  # categorical features: read dictionary-encoded (each value typed once)
    scored_at: pd.Timestamp


def score_file(
    root: Path,
    input: str | Path,
    output: str | Path,
    *,
    model_name: str,
    alias: str = "champion",
    chunk_rows: int | None = None,
    max_bad_rows: int | None = None,
    rejects: str | Path | None = None,
    record: bool = True,
    command: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    scheduler: str | None = None,
    report: bool = True,
    workers: int | None = None,
) -> ScoreResult:
    """Score ``input`` with ``model_name@alias`` into ``output`` (see the module docstring).

    Args:
        root: the project (its registry and tracking store).
        alias: ``champion``, another alias, or a version number.
        chunk_rows: rows per chunk (default :data:`CHUNK_ROWS`).
        max_bad_rows: stop when more rows than this are rejected (None: no limit).
        rejects: where rejected rows go (default: ``<output stem>.rejects.csv``).
        record: record the job as a run in the tracking store.
        progress: called after each chunk with (rows read, rows rejected).
        scheduler: the address of a ``dask.distributed`` scheduler (``tcp://HOST:PORT``):
            the Parquet file's row groups are scored on its workers, each loading the same
            model version from the registry (hash checked) and writing its part next to
            the output; the parts are joined here in input order. The output is the one a
            local run writes. Workers need nbops installed and the project, the input and
            the output's folder at the same paths.
        workers: threads scoring chunks side by side on this machine (default: one per
            core, at most :data:`WORKERS`); the output is the same with any number.

    Raises:
        DataSourceError: the input is missing, empty, of an unknown kind or unreadable.
        DataError: a column the model needs is missing, or too many rows are rejected.
        ReleaseError: the model or its alias (or version) does not exist.
        ConfigError: the output's kind is unknown; the scheduler cannot be reached.
    """
    started = time.time()
    _refuse_urls(input=input, output=output, rejects=rejects)
    # Absolute from here on: the report runs in the project's folder (papermill's cwd,
    # the process's while it runs), and a relative path must not follow it there.
    root = _absolute(root)
    source, target = _absolute(input), _absolute(output)
    if rejects is not None:
        rejects = _absolute(rejects)
    _check_paths(source, target)
    _keep_freed_memory()
    # No cyclic garbage collection while the job runs: the imports of MLflow and the
    # report on their threads set off full collections that walked the chunks in flight
    # and every module object, 1-2 s of CPU at 5M rows for nothing (reference counting
    # frees every chunk). What the job leaves (modules, the store) then joins the oldest
    # generation at once, as if it had survived collections: left in the youngest, the
    # first collection after the job would walk all of it (1-1.5 s more).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _score_file(
            root,
            source,
            target,
            started=started,
            model_name=model_name,
            alias=alias,
            chunk_rows=chunk_rows,
            max_bad_rows=max_bad_rows,
            rejects=rejects,
            record=record,
            command=command,
            progress=progress,
            scheduler=scheduler,
            report=report,
            workers=workers or default_workers(),
        )
    finally:
        gc.freeze()
        gc.unfreeze()  # into the oldest generation (a caller's process collects it as usual)
        if collecting:
            gc.enable()


def _refuse_urls(*, input: str | Path, output: str | Path, rejects: str | Path | None) -> None:
    """Files given as URLs refused, shown redacted (see :func:`~nbops.tracking.redact.refuse_url`)."""
    from nbops.errors import ConfigError
    from nbops.tracking.redact import refuse_url

    refuse_url(input, name="input", command="nbops score", error=DataSourceError)
    later = "write to a local path and copy the file there after (aws s3 cp, gsutil cp, ...)"
    refuse_url(output, name="output", command="nbops score", error=ConfigError, fix=later)
    refuse_url(rejects, name="rejects file", command="nbops score", error=ConfigError, fix=later)


def _absolute(path: str | Path) -> Path:
    """``path`` from the working directory, as the user reads it (``..`` taken away,
    links kept)."""
    return Path(os.path.abspath(Path(path).expanduser()))


#: Freed memory glibc keeps for the next chunk instead of giving it back (see below).
KEEP_FREED_BYTES = 256 * 1024 * 1024


def _keep_freed_memory() -> None:
    """Let glibc's malloc keep freed memory for reuse (Linux; a no-op elsewhere).

    Every chunk allocates arrays of the same few MB and frees them. By default glibc
    serves those with fresh ``mmap`` pages (or trims its heap once they are freed), so
    each chunk's memory is faulted in and zeroed by the kernel again: 800,000 page
    faults and a third of the loop's CPU at 5M rows (sys time 2.4 s of 6.6 s). With the
    heap kept (up to :data:`KEEP_FREED_BYTES`) and arrays up to 32 MB taken from it, a
    chunk reuses the last one's memory. Peak memory is unchanged: only the process's
    own freed memory is kept, and the command exits at the end."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):  # not glibc (musl): as it is
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, KEEP_FREED_BYTES)  # M_TRIM_THRESHOLD
        libc.mallopt(-3, 32 * 1024 * 1024)  # M_MMAP_THRESHOLD (glibc's ceiling on 64-bit)


def default_workers() -> int:
    """One scoring thread per core this process may use, at most :data:`WORKERS`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(WORKERS, cores))


def _score_file(
    root: Path,
    source: Path,
    target: Path,
    *,
    started: float,
    model_name: str,
    alias: str,
    chunk_rows: int | None,
    max_bad_rows: int | None,
    rejects: str | Path | None,
    record: bool,
    command: list[str] | None,
    progress: Callable[[int, int], None] | None,
    scheduler: str | None,
    report: bool,
    workers: int,
) -> ScoreResult:
    rejects_path = (
        Path(rejects) if rejects else target.with_name(f"{target.stem}.rejects.csv")
    ).expanduser()
    from nbops.hashing import file_sha256

    input_sha256 = _soon(file_sha256, source)  # read while the file is scored
    # What the end of the job imports (the drift's statistics, papermill and what the
    # report notebook imports, the HTML exporter, MLflow and the project's store: about
    # 4 s of CPU) is imported on a thread while the file is scored: the scoring threads
    # are in numpy and Arrow, without the GIL.
    store = _warm_finish(root, record=record, report=report)
    model = _load(root, model_name, alias)
    plan = _plan(model, _columns(source))
    target.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    tmp_out = target.with_name(f".{target.name}.{token}.tmp")
    tmp_rejects = rejects_path.with_name(f".{rejects_path.name}.{token}.tmp")
    rows = rejected = 0
    counts: dict[str, float] = {}
    sample = _Sample(SAMPLE_ROWS, share=_sample_share(source))
    parts = target.with_name(f".{target.name}.{token}.parts")
    pieces = (
        _on_cluster(scheduler, root, model, plan, source, chunk_rows or CHUNK_ROWS, sample, parts)
        if scheduler
        else _here(model, plan, source, chunk_rows or CHUNK_ROWS, sample, workers)
    )
    try:
        with (
            _Writer(tmp_out, csv=target.suffix.lower() == ".csv") as out,
            _Rejects(tmp_rejects) as bad,
        ):
            for tables, rejected_rows, n in pieces:
                for table in tables:
                    _count(counts, table["prediction"])
                    out.write(table)
                if rejected_rows is not None:
                    bad.write(rejected_rows)
                    rejected += len(rejected_rows)
                rows += n
                if progress is not None:
                    progress(rows, rejected)
                if max_bad_rows is not None and rejected > max_bad_rows:
                    bad.close()
                    kept = rejects_path.with_name(f"{rejects_path.stem}.partial.csv")
                    os.replace(tmp_rejects, kept)
                    raise DataError(
                        f"Stopped scoring '{source}': {rejected:,} of the first {rows:,} rows were "
                        f"rejected, more than --max-bad-rows {max_bad_rows:,}; no output was written. "
                        f"The rejected rows so far and why are in {kept}. Fix the file, or raise "
                        "--max-bad-rows to score the valid rows and set the rest aside."
                    )
            if rows == 0:
                raise DataSourceError(
                    f"Input file '{source}' has a header but no data rows: nothing to score. "
                    "Export the data again, or point nbops score at another file."
                )
            out.finish()
        _replace(tmp_out, target)
        if rejected:
            os.replace(tmp_rejects, rejects_path)
        else:
            tmp_rejects.unlink(missing_ok=True)
            rejects_path.unlink(missing_ok=True)  # a rejects file of an earlier run is not ours
    finally:
        pieces.close()  # a cluster job stops its remaining tasks
        tmp_out.unlink(missing_ok=True)
        tmp_rejects.unlink(missing_ok=True)
        if parts.exists():
            import shutil

            shutil.rmtree(parts, ignore_errors=True)
    output_sha256 = _soon(file_sha256, target)  # read while the drift is measured
    result = ScoreResult(
        model_name=model.name,
        model_version=model.version,
        alias=alias,
        input=str(source),
        output=str(target),
        rejects=str(rejects_path) if rejected else None,
        rows=rows,
        scored=rows - rejected,
        rejected=rejected,
        seconds=time.time() - started,
        input_sha256="",
        output_sha256="",
        scorer=model.scorer,
        predictions=_distribution(counts, rows - rejected, model.task),
        scheduler=scheduler,
    )
    drift = _drift(root, model, sample)
    if drift is not None:
        result.drift = drift.to_dict()
    result.input_sha256, result.output_sha256 = input_sha256.result(), output_sha256.result()
    result.seconds = time.time() - started
    if report:
        _report(root, result)
    if store is not None:
        store.join()
    if record:
        result.run = _record(root, result, started=started, command=command)
    return result


def _replace(source: Path, target: Path) -> None:
    """``os.replace(source, target)``, the file it replaces (an earlier job's output)
    freed on a thread: ext4 frees a 100 MB file's blocks as its last name or handle
    goes, 0.08 s the job would otherwise wait for. On POSIX; elsewhere as it is."""
    old = None
    if os.name == "posix":
        with contextlib.suppress(OSError):  # no earlier file: nothing to free
            old = os.open(target, os.O_RDONLY)
    try:
        os.replace(source, target)
    finally:
        if old is not None:
            threading.Thread(
                target=os.close, args=(old,), name="nbops-score-free", daemon=True
            ).start()


def _soon(function: Callable[..., Any], *args: Any) -> Future[Any]:
    """``function(*args)`` on a daemon thread of its own (a failed job does not wait for
    it); hashing a file there releases the GIL while the job works."""
    future: Future[Any] = Future()

    def run() -> None:
        try:
            future.set_result(function(*args))
        except BaseException as exc:  # noqa: BLE001  (raised where the result is asked for)
            future.set_exception(exc)

    threading.Thread(target=run, name="nbops-score-hash", daemon=True).start()
    return future


def _warm_finish(root: Path, *, record: bool, report: bool) -> threading.Thread | None:
    """A thread importing the drift's statistics; for the report, papermill, the engine
    and what the notebook imports, and rendering a small notebook (the exporter's first
    page costs 0.5-0.7 s of CPU in imports, templates and lexers); then importing MLflow and opening
    the project's store for the run record. In the order the end of the job needs them."""
    from nbops.tracking.store import enabled, warm_up

    record = record and enabled() and "mlflow.tracking" not in sys.modules
    notebook = root / REPORT_NOTEBOOK
    report = report and notebook.is_file()
    if not (record or report):
        return None

    def work() -> None:
        with contextlib.suppress(Exception):  # a head start only
            import scipy.spatial.distance  # noqa: F401  (the drift's statistics)
            import scipy.special  # noqa: F401

            import nbops.monitoring.drift  # noqa: F401
        if report:  # needed before the record
            with contextlib.suppress(Exception):  # a head start only
                _import_ahead(notebook)
                _render_sample()
        if record:
            warm_up(root, registry=False)  # the record releases nothing

    thread = threading.Thread(target=work, name="nbops-score-warm", daemon=True)
    thread.start()
    return thread


def _import_ahead(notebook: Path) -> None:
    """Import papermill, the in-process engine, and the modules the report notebook
    imports (each that fails is left to the notebook, which says why)."""
    import importlib
    import json

    import papermill  # noqa: F401

    import nbops.build.inprocess  # noqa: F401
    from nbops.build.imports import imported_modules

    for name in imported_modules(json.loads(notebook.read_text()), names=True):
        with contextlib.suppress(Exception):
            importlib.import_module(name)


def _render_sample() -> None:
    """Render a small executed notebook of each kind of cell and output the report has:
    the exporter's imports and templates, pygments' IPython lexer, Markdown and the
    output sanitiser are then ready (a notebook of one Markdown cell left 0.2 s of CPU
    to the report's own rendering, after the job)."""
    import tempfile

    import nbformat

    from nbops.reports.exporter import render_html

    v4 = nbformat.v4
    table = "<table><thead><tr><th>a</th></tr></thead><tbody><tr><td>1</td></tr></tbody></table>"
    cell = v4.new_code_cell("import pandas as pd\nprint('rows')", execution_count=1)
    cell.outputs = [
        v4.new_output("stream", name="stdout", text="rows\n"),
        v4.new_output("display_data", data={"text/markdown": "**1** `a`", "text/plain": "1"}),
        v4.new_output("display_data", data={"text/html": table, "text/plain": "a"}),
    ]
    sample = v4.new_notebook(
        cells=[v4.new_markdown_cell("# Report\n\nText with `code` and **bold**."), cell],
        metadata={"language_info": {"name": "python", "pygments_lexer": "ipython3"}},
    )
    with tempfile.TemporaryDirectory(prefix="nbops-score-warm-") as folder:
        notebook = Path(folder) / "sample.ipynb"
        nbformat.write(sample, notebook)
        render_html(notebook, notebook.with_suffix(".html"))


Piece = tuple[Iterator[pa.Table], "pd.DataFrame | None", int]


def _here(
    model: ServedModel,
    plan: _Plan,
    source: Path,
    chunk_rows: int,
    sample: _Sample,
    workers: int = 1,
) -> Iterator[Piece]:
    """The job on this machine: (output tables, rejected rows, rows read) per chunk, in
    input order.

    ``workers`` threads score chunks side by side: validation, the compiled scorer and
    building the output are array work in numpy and Arrow, which release the GIL, so
    two threads use two cores. At most ``workers + 1`` chunks are being scored or wait
    to be written, so memory stays bounded whatever the file size. The drift sample is
    drawn here, chunk by chunk in input order, so it is the same with any ``workers``.
    """
    rows = 0
    pending: deque[tuple[Future[Any], int, int]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nbops-score") as pool:
        try:
            for frame, ids in _ahead(_chunks(source, plan, chunk_rows)):
                if frame.empty:  # a CSV with a header only
                    continue
                future = pool.submit(_score, model, plan, frame, ids, offset=rows)
                pending.append((future, rows, len(frame)))
                rows += len(frame)
                if len(pending) > workers:
                    yield _scored(pending.popleft(), sample, model, source)
            while pending:
                yield _scored(pending.popleft(), sample, model, source)
        finally:
            for future, _, _ in pending:  # a failed or stopped job scores nothing more
                future.cancel()


def _scored(
    item: tuple[Future[Any], int, int], sample: _Sample, model: ServedModel, source: Path
) -> Piece:
    """A chunk's result, once its thread is done; a failure that is not the input's
    (memory, a bug) is one paragraph naming the rows, and stops the job."""
    future, offset, n = item
    try:
        table, rejected, batch = future.result()
    except NbopsError:
        raise
    except Exception as exc:
        why = (str(exc).strip().splitlines() or [""])[0][:300]
        raise NbopsError(
            f"Scoring rows {offset + 1:,} to {offset + n:,} of '{source}' failed "
            f"({type(exc).__name__}{': ' + why if why else ''}); no output was written. "
            "If memory ran out, score in smaller chunks (--chunk-rows) or on fewer threads "
            "(--workers 1); otherwise run again with --verbose for the traceback and report it."
        ) from exc
    sample.add(batch, table, model)
    return iter([table]), rejected, n


def score_chunk(
    model: ServedModel,
    plan: _Plan,
    frame: pd.DataFrame,
    ids: pa.Table,
    *,
    offset: int,
    sample: _Sample | None = None,
) -> tuple[pa.Table, pd.DataFrame | None]:
    """One chunk → (the output rows of its valid rows, in order; its rejected rows or None).

    ``frame`` holds the model's features, ``ids`` the columns passed through.

    ``offset`` is the number of data rows before the chunk: rejected rows are numbered
    from 1 for the first data row of the file.
    """
    table, rejected, batch = _score(model, plan, frame, ids, offset=offset)
    if sample is not None:
        sample.add(batch, table, model)
    return table, rejected


def _score(
    model: ServedModel, plan: _Plan, frame: pd.DataFrame, ids: pa.Table, *, offset: int
) -> tuple[pa.Table, pd.DataFrame | None, Any]:
    """:func:`score_chunk` without the sample: also returns the valid rows' batch."""
    batch, problems = validate_frame(
        frame, model.features, reject_unseen=False
    )  # unseen categories are scored as the service scores them by default
    n = len(frame)
    keep = np.ones(n, dtype=bool)
    rejected = None
    if problems:
        reasons: dict[int, list[str]] = {}
        for i, column, message in problems:
            reasons.setdefault(i, []).append(f"{column}: {message}")
        bad = np.fromiter(sorted(reasons), dtype=np.intp, count=len(reasons))
        keep[bad] = False
        rejected = pd.DataFrame({"row": bad + offset + 1})
        for name in plan.ids:
            rejected[name] = ids.column(name).take(pa.array(bad)).to_pylist()
        rejected["reasons"] = ["; ".join(reasons[i]) for i in bad]
        rows = np.flatnonzero(keep)
        columns = {name: _take(values, rows) for name, values in batch.columns.items()}
        batch = type(batch)(columns, batch.features, int(keep.sum()))
        ids = ids.filter(pa.array(keep))
    return _output(model, plan, ids, batch), rejected, batch


class _Sample:
    """A uniform random sample of at most ``size`` scored rows of the whole file, kept
    while it streams by (each row gets a random key; the smallest keys stay), with the
    model's output per row as the reference profile holds it (the positive class's
    probability, the label, or the number)."""

    def __init__(self, size: int, *, seed: int = 0, share: float = 1.0) -> None:
        self.size = size
        #: rows drawn at most (a part of a cluster job keeps only its share of the sample)
        self.share = share
        self.rng = np.random.default_rng(seed)
        #: the keys and model outputs of the rows kept so far, in the file's order
        self.keys = np.empty(0)
        self.served: np.ndarray = np.empty(0)
        #: rows typed into a frame so far (what drawing the sample costs)
        self.typed = 0
        # The kept rows, a piece per chunk (validated columns, or a cluster part's frame):
        # made into one DataFrame only when asked, since building and concatenating
        # frames chunk by chunk cost more than scoring them (typed per chunk while the
        # file streams, 0.15 s came off the end of the job and 0.1-0.2 s of CPU went
        # onto the loop: not kept).
        self._pieces: list[tuple[Any, int]] = []
        self._frame: pd.DataFrame | None = None

    @property
    def frame(self) -> pd.DataFrame | None:
        """The sampled rows as the scikit-learn pipeline types them (None: no row)."""
        if self._frame is None and self._pieces:
            self._prune()
            frames = [p if isinstance(p, pd.DataFrame) else p.frame() for p, _ in self._pieces]
            self._frame = pd.concat(frames, ignore_index=True)
        return self._frame

    def add(self, batch: Any, table: pa.Table, model: ServedModel) -> None:
        keys = self.rng.random(batch.n_rows)
        cut = self.share
        if len(self.keys) >= self.size:  # only rows that can enter the sample are typed
            cut = min(float(np.partition(self.keys, self.size - 1)[self.size - 1]), cut)
        chosen = np.flatnonzero(keys < cut)
        if not len(chosen):
            return
        self.typed += len(chosen)
        # by row numbers: a few rows of each chunk, and a boolean mask over the whole
        # chunk costs as much as the column it picks from
        part = type(batch)(
            {k: _take(v, chosen) for k, v in batch.columns.items()}, batch.features, len(chosen)
        )
        self._append(part, keys[chosen], _served(table, model)[chosen])

    def merge(self, keys: np.ndarray, frame: pd.DataFrame | None, served: np.ndarray) -> None:
        """Add another part's sample (drawn the same way): the smallest keys of both stay."""
        if frame is None or not len(keys):
            return
        self._append(frame, keys, served)

    def _append(self, part: Any, keys: np.ndarray, served: np.ndarray) -> None:
        self._pieces.append((part, len(keys)))
        self.keys = np.concatenate([self.keys, keys])
        self.served = np.concatenate([self.served, served])
        self._frame = None
        if len(self.keys) > 2 * self.size:  # now and then, so memory stays bounded
            self._prune()

    def _prune(self) -> None:
        """Keep the rows of the ``size`` smallest keys, in the file's order."""
        if len(self.keys) <= self.size:
            return
        keep = np.sort(np.argpartition(self.keys, self.size - 1)[: self.size])
        kept = np.zeros(len(self.keys), dtype=bool)
        kept[keep] = True
        pieces, start = [], 0
        for part, n in self._pieces:
            mask = kept[start : start + n]
            start += n
            left = int(mask.sum())
            if not left:
                continue
            rows = np.flatnonzero(mask)
            if isinstance(part, pd.DataFrame):
                part = part.iloc[rows].reset_index(drop=True)
            else:
                part = type(part)(
                    {k: _take(v, rows) for k, v in part.columns.items()}, part.features, left
                )
            pieces.append((part, left))
        self._pieces = pieces
        self.keys, self.served = self.keys[keep], self.served[keep]


def _sample_share(source: Path) -> float:
    """The share of rows that may enter the drift sample: only rows whose random key may
    be among the file's smallest :data:`SAMPLE_ROWS` (a fifth more than that, in
    expectation) are typed and kept, so a large file's chunks each add a few rows, not
    all theirs. The sample is the same: fewer than SAMPLE_ROWS keys below the share is
    some 50 standard deviations away. Unknown row count (CSV): every row may enter."""
    if source.suffix.lower() not in _PARQUET:
        return 1.0
    import pyarrow.parquet as pq

    total = pq.ParquetFile(source).metadata.num_rows
    return min(1.0, 1.2 * SAMPLE_ROWS / max(total, 1))


def _served(table: pa.Table, model: ServedModel) -> np.ndarray:
    """What the reference profile's prediction sketch holds, per output row."""
    if model.task != "classification":
        return table["prediction"].to_numpy()
    names = [c[len("proba_") :] for c in table.column_names if c.startswith("proba_")]
    positive = str(model.positive_class)
    if len(names) == 2 and positive in names:
        return table[f"proba_{positive}"].to_numpy()
    return np.asarray(table["prediction"].to_pylist(), dtype=object).astype(str)


def _drift(root: Path, model: ServedModel, sample: _Sample) -> Any:
    """The sample against the model's reference profile (None without a profile or rows)."""
    import json

    from nbops.monitoring.drift import DriftPolicy, Profile, compare
    from nbops.monitoring.watch import PROFILE_FILE
    from nbops.tracking.registry import version_files

    if sample.frame is None or sample.frame.empty:
        return None
    files = version_files(root, model.name, model.version, (PROFILE_FILE,))
    if PROFILE_FILE not in files:
        return None
    profile = Profile.from_dict(json.loads(files[PROFILE_FILE]))
    return compare(
        profile,
        sample.frame,
        policy=DriftPolicy.from_config(_drift_config(root)),
        predictions=sample.served,
    )


def _drift_config(root: Path) -> dict[str, Any]:
    """env.yaml's ``monitor.drift`` (the thresholds ``nbops monitor`` uses), if any."""
    import yaml

    path = root / "env.yaml"
    if not path.is_file():
        return {}
    try:
        env = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        return {}  # nbops monitor names the problem; scoring keeps the defaults
    monitor = env.get("monitor") if isinstance(env, dict) else None
    return dict((monitor or {}).get("drift") or {}) if isinstance(monitor, dict) else {}


def _count(counts: dict[str, float], predictions: pa.ChunkedArray | pa.Array) -> None:
    """Add a chunk's predictions to the running counts per label (or sum, regression)."""
    import pyarrow.compute as pc

    if pa.types.is_floating(predictions.type):
        counts["sum"] = counts.get("sum", 0.0) + float(pc.sum(predictions).as_py() or 0.0)
        return
    for item in pc.value_counts(predictions).to_pylist():
        counts[item["values"]] = counts.get(item["values"], 0) + item["counts"]


def _distribution(counts: dict[str, float], scored: int, task: str) -> dict[str, float]:
    if not scored:
        return {}
    if task != "classification":
        return {"mean": counts.get("sum", 0.0) / scored}
    return {label: n / scored for label, n in sorted(counts.items())}


def _take(values: Any, rows: np.ndarray) -> Any:
    """The values at row numbers ``rows`` of a validated column (array or list)."""
    if isinstance(values, (np.ndarray, pd.Categorical)):
        return values[rows]
    return [values[i] for i in rows.tolist()]


def _blocks(
    method: Callable[[Any, int], np.ndarray], columns: dict[str, Any], n: int
) -> np.ndarray:
    """The compiled scorer's ``method`` over ``columns``, :data:`BLOCK_ROWS` rows at a time.

    The scorer builds the feature matrix and a few temporaries of its size: a whole
    chunk's are tens of MB, fresh memory the kernel zeroes page by page (a third of the
    loop's CPU went to page faults and copies out of cache); a block's stay in the CPU
    cache and malloc's free lists. Rows are scored independently: same floats."""
    if n <= BLOCK_ROWS:
        return method(columns, n)
    parts = [
        method(
            {name: values[start : start + BLOCK_ROWS] for name, values in columns.items()},
            min(BLOCK_ROWS, n - start),
        )
        for start in range(0, n, BLOCK_ROWS)
    ]
    return np.concatenate(parts)


def _output(model: ServedModel, plan: _Plan, ids: pa.Table, batch: Any) -> pa.Table:
    """The output columns: IDs, prediction, probabilities, model, version, time."""
    n = batch.n_rows
    arrays: dict[str, Any] = {name: ids.column(name) for name in plan.ids}
    if model.task == "classification":
        if n == 0:
            proba = np.empty((0, len(plan.labels)))
        elif model.compiled is not None:
            proba = _blocks(model.compiled.predict_proba, batch.columns, n)
        else:
            proba = model.estimator.predict_proba(batch.frame())
        labels = pa.array(plan.labels, type=pa.string())
        arrays["prediction"] = labels.take(pa.array(proba.argmax(axis=1), type=pa.int64()))
        for j, label in enumerate(plan.labels):
            arrays[f"proba_{label}"] = pa.array(np.ascontiguousarray(proba[:, j]))
    else:
        if n == 0:
            values = np.empty(0)
        elif model.compiled is not None:
            values = _blocks(model.compiled.predict, batch.columns, n)
        else:
            values = model.estimator.predict(batch.frame())
        arrays["prediction"] = pa.array(np.asarray(values, dtype=float))
    # Constant columns built by Arrow in one step, not from a Python list per chunk.
    arrays["model_name"] = pa.repeat(pa.scalar(model.name, pa.string()), n)
    arrays["model_version"] = pa.repeat(pa.scalar(model.version, pa.string()), n)
    arrays["scored_at"] = pa.repeat(
        pa.scalar(plan.scored_at.to_pydatetime(), pa.timestamp("us", tz="UTC")), n
    )
    return pa.table(arrays)


# -- on a dask.distributed cluster ---------------------------------------------------

_HERE = "score on this machine"
_NEEDS = "the project, the input and the output's folder"


def _on_cluster(
    address: str,
    root: Path,
    model: ServedModel,
    plan: _Plan,
    source: Path,
    chunk_rows: int,
    sample: _Sample,
    folder: Path,
) -> Iterator[Piece]:
    """The job over the file's row groups on a Dask cluster, the parts joined in order."""
    from nbops.cluster import connect, parquet_parts, part_result, require_parquet

    require_parquet(source, here=_HERE)
    client = connect(address, here=_HERE)
    futures: list[Any] = []
    share = _sample_share(source)  # the parts' samples stay small on the wire
    try:
        folder.mkdir(parents=True, exist_ok=True)
        futures = [
            client.submit(
                _score_part,
                str(root),
                model.name,
                model.version,  # pinned: a promotion mid-job does not mix versions
                str(source),
                groups,
                offset,
                plan,
                chunk_rows,
                str(folder / f"part-{i:05d}.parquet"),
                SAMPLE_ROWS,
                share,
                i + 1,
                pure=False,
            )
            for i, (groups, offset) in enumerate(parquet_parts(source, chunk_rows))
        ]
        for future in futures:
            part = part_result(future, address, needs=_NEEDS)
            sample.merge(*part["sample"])
            yield _read_part(Path(part["output"])), part["rejected"], part["rows"]
    finally:
        if futures:
            client.cancel(futures)
        client.close()


def _score_part(
    root: str,
    name: str,
    version: str,
    source: str,
    groups: list[int],
    offset: int,
    plan: _Plan,
    chunk_rows: int,
    output: str,
    sample_rows: int,
    share: float,
    seed: int,
) -> dict[str, Any]:
    """On a worker: score some row groups into ``output``; return the counts, the
    rejected rows and the part's drift sample."""
    from nbops.cluster import on_worker
    from nbops.serving.model import load_served_model

    # once per worker process, hash checked like the service's
    model = on_worker(
        ("score", root, name, version), lambda: load_served_model(Path(root), name, version)
    )
    sample = _Sample(sample_rows, seed=seed, share=share)
    rows, rejected = 0, []
    with _Writer(Path(output), csv=False) as out:
        for frame, ids in _chunks(Path(source), plan, chunk_rows, row_groups=groups):
            table, bad = score_chunk(model, plan, frame, ids, offset=offset + rows, sample=sample)
            out.write(table)
            if bad is not None:
                rejected.append(bad)
            rows += len(frame)
        out.finish()
    return {
        "output": output,
        "rows": rows,
        "rejected": pd.concat(rejected, ignore_index=True) if rejected else None,
        "sample": (sample.keys, sample.frame, sample.served),
    }


def _read_part(path: Path) -> Iterator[pa.Table]:
    from nbops.data.tables import open_parquet

    for batch in open_parquet(path).iter_batches(batch_size=CHUNK_ROWS):
        yield pa.Table.from_batches([batch])
    path.unlink(missing_ok=True)


# -- input ------------------------------------------------------------------------------


def _check_paths(source: Path, target: Path) -> None:
    from nbops.errors import ConfigError

    kinds = ", ".join(sorted([*_CSV, *_PARQUET]))
    if not source.exists():
        raise DataSourceError(
            f"Input file '{source}' does not exist (looked in {source.resolve().parent}). "
            "Give the path of a .csv or .parquet file to score."
        )
    if source.is_dir():
        raise DataSourceError(
            f"Input '{source}' is a folder, not a file. Give the path of a .csv or .parquet file."
        )
    suffix = source.suffix.lower()
    if suffix not in _CSV and suffix not in _PARQUET:
        raise DataSourceError(
            f"Input file '{source}' has the extension '{suffix or '(none)'}', which nbops score "
            f"does not read. Supported: {kinds}. Convert the file, or rename it if it is one of these."
        )
    if source.stat().st_size == 0:
        raise DataSourceError(
            f"Input file '{source}' is empty (0 bytes): nothing to score. Export the data again."
        )
    if target.suffix.lower() not in _OUT:
        raise ConfigError(f"Cannot write scores to '{target}': name the output .parquet (or .csv).")
    if target.resolve() == source.resolve():
        raise ConfigError(
            f"The output '{target}' is the input file: write the scores to another file."
        )


def _columns(source: Path) -> list[str]:
    """The input's column names, from the Parquet footer or the CSV header line."""
    if source.suffix.lower() in _PARQUET:
        import pyarrow.parquet as pq

        try:
            return list(pq.ParquetFile(source).schema_arrow.names)
        except (OSError, pa.ArrowException) as exc:
            raise DataSourceError(
                f"Input file '{source}' is not a readable Parquet file ({exc}). "
                "Export it again, or give a .csv file."
            ) from exc
    try:
        header = pd.read_csv(source, sep=_CSV[source.suffix.lower()], nrows=0, encoding="utf-8-sig")
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataSourceError(
            f"Input file '{source}' has no readable header line ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). Export it again as UTF-8 "
            "comma-separated text with a header."
        ) from exc
    return [str(c).strip() for c in header.columns]


def _plan(model: ServedModel, columns: list[str]) -> _Plan:
    names = [f.name for f in model.features]
    missing = [n for n in names if n not in columns]
    if missing:
        raise DataError(
            f"The input has no column {', '.join(repr(m) for m in missing)}, which model "
            f"'{model.name}' version {model.version} needs (it reads {', '.join(names)}). "
            "Add the column(s) to the file, or check that it is the right file; "
            "`nbops models` lists the versions."
        )
    ids = [c for c in columns if c in model.ignored]
    labels = (
        label_names(model.estimator.classes_, model.classes)
        if model.task == "classification"
        else []
    )
    text = [f.name for f in model.features if f.role == "datetime"]
    categories = [f.name for f in model.features if f.role in ("categorical", "high_cardinality")]
    now = pd.Timestamp(datetime.now(timezone.utc)).floor("us")
    return _Plan(names, ids, labels, text, categories, now)


def _chunks(
    source: Path, plan: _Plan, chunk_rows: int, *, row_groups: list[int] | None = None
) -> Iterator[tuple[pd.DataFrame, pa.Table]]:
    """The input a chunk at a time: (the features as pandas, the pass-through columns as
    Arrow, untouched). Categorical features come dictionary-encoded."""
    wanted = [*plan.ids, *[f for f in plan.features if f not in plan.ids]]
    if source.suffix.lower() in _PARQUET:
        from nbops.data.tables import open_parquet

        try:
            parquet = open_parquet(source, read_dictionary=plan.categories)
            for batch in parquet.iter_batches(
                batch_size=chunk_rows, row_groups=row_groups, columns=wanted
            ):
                yield (
                    batch.select(plan.features).to_pandas(),
                    pa.Table.from_batches([batch.select(plan.ids)]),
                )
        except (OSError, pa.ArrowException) as exc:
            raise DataSourceError(
                f"Input file '{source}' could not be read ({type(exc).__name__}: {exc}). "
                "Export it again."
            ) from exc
        return
    # Text columns stay text, as ingest read the training file; a number column is
    # read as numbers when every value of the chunk is one (else as text, typed below
    # value by value exactly as the service types text).
    try:
        reader = pd.read_csv(
            source,
            sep=_CSV[source.suffix.lower()],
            usecols=lambda c: str(c).strip() in wanted,
            dtype={
                **{c: str for c in [*plan.ids, *plan.text]},
                **{c: "category" for c in plan.categories},
            },
            keep_default_na=False,
            na_filter=False,
            skipinitialspace=True,
            encoding="utf-8-sig",
            chunksize=chunk_rows,
            low_memory=False,
        )
        with reader:
            for frame in reader:
                frame.columns = [str(c).strip() for c in frame.columns]
                ids = pa.Table.from_pandas(frame[plan.ids], preserve_index=False)
                yield frame[plan.features], ids
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataSourceError(
            f"Input file '{source}' could not be parsed as "
            f"{'tab' if source.suffix.lower() == '.tsv' else 'comma'}-separated text "
            f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}). Check that every "
            "row has as many fields as the header and that text holding the separator is quoted."
        ) from exc


# -- output -----------------------------------------------------------------------------


#: Output columns holding one value per job: dictionary-encoded in Parquet.
_FEW_VALUES = ("model_name", "model_version", "scored_at")


class _Writer:
    """Output tables appended to one Parquet or CSV file (the first fixes the schema).

    Encoding and compression run on a thread of their own (Arrow releases the GIL), so
    writing a chunk overlaps scoring the next; one chunk waits at most."""

    def __init__(self, path: Path, *, csv: bool) -> None:
        self.path, self.csv = path, csv
        self._writer: Any = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nbops-score-write")
        self._pending: Future[None] | None = None

    def write(self, table: pa.Table) -> None:
        if self._pending is not None:
            self._pending.result()  # a failed write stops the job here
        self._pending = self._pool.submit(self._write, table)

    def _write(self, table: pa.Table) -> None:
        if self._writer is None:
            self._open(table.schema)
        elif table.schema != self._writer.schema:
            table = table.cast(self._writer.schema)
        self._writer.write_table(table)

    def _open(self, schema: pa.Schema) -> None:
        if self.csv:
            import pyarrow.csv as pcsv

            self._writer = pcsv.CSVWriter(str(self.path), schema)
        else:
            import pyarrow.parquet as pq

            # Dictionary-encoded: only the columns with few distinct values (the label,
            # model, version, time). Parquet tries a dictionary on every column by
            # default and gives up on IDs and probabilities only after building one: a
            # third of the job's CPU at 5M rows, for a larger file.
            few = [n for n in _FEW_VALUES if n in schema.names]
            if pa.types.is_string(schema.field("prediction").type):
                few.append("prediction")
            self._writer = pq.ParquetWriter(str(self.path), schema, use_dictionary=few)

    def finish(self) -> None:
        """Wait for the last write and close the file (raises what a write raised)."""
        if self._pending is not None:
            self._pending.result()
        self.close()

    def close(self) -> None:
        if self._pending is not None:
            with contextlib.suppress(Exception):  # the job is failing already
                self._pending.result()
            self._pending = None
        self._pool.shutdown(wait=True)
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ahead(chunks: Iterator[Any]) -> Iterator[Any]:
    """``chunks``, the next one read on a thread while the caller works on this one."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="nbops-score-read") as pool:
        pending = pool.submit(next, chunks, None)
        while True:
            item = pending.result()
            if item is None:
                return
            pending = pool.submit(next, chunks, None)
            yield item


class _Rejects:
    """Rejected rows appended to one CSV file: row, ID columns, reasons."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: Any = None

    def write(self, frame: pd.DataFrame) -> None:
        if self._handle is None:
            self._handle = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115
            frame.to_csv(self._handle, index=False)
        else:
            frame.to_csv(self._handle, index=False, header=False)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> _Rejects:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- report --------------------------------------------------------------------------------

#: The report notebook, in the project (the template has it; older projects may not).
REPORT_NOTEBOOK = "notebooks/score/report.ipynb"


def _report(root: Path, result: ScoreResult) -> None:
    """Run the project's report notebook on the job's summary; set ``result.report`` (the
    HTML) or ``result.report_note`` (why there is none). Scoring has succeeded by now:
    a report that fails leaves the output and the run as they are, and says where the
    executed notebook shows the error.

    A Python notebook runs in this process (:mod:`nbops.build.inprocess`): a kernel's
    process (Python, ipykernel, the notebook's imports again) cost 2.5-3 s of CPU, more
    than the report's work; what it imports is imported already (:func:`_warm_finish`).
    A notebook for another language gets papermill's kernel."""
    import json
    import tempfile

    target = Path(result.output)
    executed = target.with_name(f"{target.stem}.report.ipynb")
    html = executed.with_suffix(".html")
    failed = executed.with_name(f"{target.stem}.report.failed.ipynb")
    for earlier in (executed, html, failed):  # a report of an earlier job is not this one's
        earlier.unlink(missing_ok=True)
    notebook = root / REPORT_NOTEBOOK
    if not notebook.is_file():
        result.report_note = (
            f"No report made: this project has no {REPORT_NOTEBOOK} (projects made by "
            "`nbops init` have it; copy it from a new project to get one)."
        )
        return
    import papermill

    from nbops.reports.exporter import render_html

    token = uuid.uuid4().hex[:8]
    tmp_nb = executed.with_name(f".{executed.name}.{token}.tmp.ipynb")
    tmp_html = html.with_name(f".{html.name}.{token}.tmp")
    with tempfile.TemporaryDirectory(prefix="nbops-score-report-") as folder:
        summary = Path(folder) / "score.json"
        summary.write_text(json.dumps(result.to_dict(), indent=2, default=str))
        try:
            papermill.execute_notebook(
                str(notebook),
                str(tmp_nb),
                parameters={"summary": str(summary)},
                engine_name=_engine(notebook),
                cwd=str(root),
                progress_bar=False,
                log_output=False,
            )
            render_html(tmp_nb, tmp_html)
        except Exception as exc:  # noqa: BLE001  (the scores are written: a report never undoes them)
            tmp_html.unlink(missing_ok=True)
            if tmp_nb.is_file():
                os.replace(tmp_nb, failed)
            why = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
            result.report_note = (
                f"No report made: {REPORT_NOTEBOOK} failed ({why}); "
                f"the executed notebook is {failed}. The scores are complete."
            )
            return
    os.replace(tmp_nb, executed)
    os.replace(tmp_html, html)
    result.report = str(html)


def _engine(notebook: Path) -> str | None:
    """papermill's engine for ``notebook``: in this process for Python (the kernel's
    language, by its kernelspec), else papermill's own (a kernel, over IPC)."""
    import json

    metadata = json.loads(notebook.read_text()).get("metadata", {})
    spec = metadata.get("kernelspec") or {}
    language = spec.get("language") or (metadata.get("language_info") or {}).get("name")
    if language in (None, "python") and spec.get("name", "python3").startswith("python"):
        from nbops.build.inprocess import register

        return register()
    from nbops.build.kernels import ipc_by_default

    ipc_by_default()  # kernels over IPC: no TCP port races with other jobs
    return None


# -- model and record -------------------------------------------------------------------


def _load(root: Path, name: str, alias: str) -> ServedModel:
    from nbops.serving.model import load_served_model
    from nbops.serving.stored import load_stored_model
    from nbops.tracking.store import require_reachable

    try:
        # The scorer stored with the model when there is one (no scikit-learn or skops
        # to import: 3 s of CPU less), else the model itself, as the service loads it.
        stored = load_stored_model(root, name, alias)
        if stored is not None:
            return stored
        # A remote store that is away: one paragraph, its password hidden (MLflow's own
        # error is a traceback that prints the URI as it is).
        require_reachable(root)
        return load_served_model(root, name, alias)
    except ReleaseError as exc:
        error = exc
    # Why it failed, in the words of the registry (MLflow's, which also reads remote stores).
    from nbops.tracking.registry import Registry

    registry = Registry(root)
    if name not in registry.models():
        registered = registry.models()
        raise ReleaseError(
            f"There is no registered model '{name}' to score with (registered: "
            f"{', '.join(registered) or 'none yet'}). A build whose gate passes registers it: "
            "run `make build` in the project; or name another model with --model or NBOPS_MODEL."
        ) from error
    if registry.alias(name, alias) is None and registry.version(name, alias.lstrip("v")) is None:
        kind = "version" if alias.lstrip("v").isdigit() else "alias"
        raise ReleaseError(
            f"Model '{name}' has no {kind} '{alias}' to score with"
            + (": no build has passed the gate yet" if alias == "champion" else "")
            + f". See `nbops models {name}` for its versions and aliases, and score with "
            f"--alias VERSION, or approve a version with `nbops promote {name} VERSION --reason ...`."
        ) from error
    raise error


def _record(
    root: Path, result: ScoreResult, *, started: float, command: list[str] | None
) -> dict[str, Any]:
    """The job as a run in the tracking store (spooled when the store is away)."""
    from nbops.tracking.lineage import git_state, python_info
    from nbops.tracking.publish import publish_or_spool
    from nbops.tracking.record import EXECUTED, BuildRecord, TaskRecord
    from nbops.tracking.redact import display_url, redact_command
    from nbops.tracking.store import enabled

    if not enabled():
        return {}
    counts = {
        "rows": result.rows,
        "scored": result.scored,
        "rejected": result.rejected,
        "seconds": result.seconds,
        "rows_per_s": result.rows / result.seconds if result.seconds else 0.0,
        "prediction": result.predictions,
    }
    if result.drift:
        counts["drift"] = {
            "share": result.drift["share_drifted"],
            "detected": int(result.drift["drifted"]),
            "columns": len(result.drift["drifted_columns"]),
            "sample_rows": result.drift["n_current"],
        }
        counts["drift"].update(
            {
                f"{c['column']}.{c['method']}": c["statistic"]
                for c in [*result.drift["columns"], result.drift["prediction"] or {}]
                if c.get("statistic") is not None
            }
        )
    params = {
        "model_name": result.model_name,
        "model_version": result.model_version,
        "alias": result.alias,
        "input": result.input,
        "output": result.output,
        "input_sha256": result.input_sha256,
        "output_sha256": result.output_sha256,
        "scorer": result.scorer,
        # as shown anywhere: without credentials (Dask refuses addresses with any)
        "scheduler": display_url(result.scheduler) if result.scheduler else "local",
    }
    files = {"rejects.csv": result.rejects} if result.rejects else {}
    if result.report:
        files["report.html"] = result.report
        files["report.ipynb"] = str(Path(result.report).with_suffix(".ipynb"))
    tmp = None
    if result.drift:
        import json
        import tempfile

        tmp = tempfile.TemporaryDirectory(prefix="nbops-score-")
        drift_file = Path(tmp.name) / "drift.json"
        drift_file.write_text(json.dumps(result.drift, indent=2, default=str))
        files["drift.json"] = str(drift_file)
    record = BuildRecord(
        build_id=uuid.uuid4().hex,
        project=root.name,
        root=str(root),
        command=redact_command(command or [os.path.basename(sys.argv[0]), *sys.argv[1:]]),
        trigger="score",
        started_at=started,
        ended_at=time.time(),
        status="FINISHED",
        git=_quiet(git_state, root),
        env={"score": params},
        python=python_info(),
        data={"content_hash": result.input_sha256, "rows": result.rows},
        metrics=counts,
        tasks=[
            TaskRecord(
                name="score",
                status=EXECUTED,
                params=params,
                duration_s=result.seconds,
                metrics=counts,
                files=files,
                product_hashes={"output": result.output_sha256},
            )
        ],
    )
    try:
        return publish_or_spool(record, root=root, quiet=True)
    finally:
        if tmp is not None:
            tmp.cleanup()


def _quiet(function: Callable[[Path], dict[str, Any]], root: Path) -> dict[str, Any]:
    with contextlib.suppress(Exception):  # not a git repository: nothing to say
        return function(root)
    return {}
