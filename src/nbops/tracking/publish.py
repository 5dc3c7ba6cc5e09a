"""Publish a build record, or spool it locally when the store cannot take it.

Nothing is lost: a record that cannot be published (store unreachable, or an error
half-way) is copied with every file it references into ``.nbops/spool/<build id>/``,
and ``nbops sync`` publishes spooled records later, oldest first. A spooled record
that cannot be read is moved aside (``<build id>.corrupt``) and reported, and the rest
are still published.

Recording is this module's job; releasing the model is not. Callers that release (the
build hooks, ``nbops sync``) pass the release step in (``release=``, normally
:func:`nbops.release.prepare.release_build`), so the record never decides a release
and ``nbops.tracking`` imports nothing above it.
"""

from __future__ import annotations

import shutil
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbops.tracking.record import BuildRecord, load_spooled, spooled_records
from nbops.tracking.redact import display_url
from nbops.tracking.store import Store, local_store_dir, reachability_problem, tracking_uri

__all__ = ["Release", "publish_or_spool", "spool_dir", "sync"]

#: The release step: ``release(record, published=..., store=...)`` -> what it did, or None.
Release = Callable[..., "dict[str, Any] | None"]


def spool_dir(root: Path) -> Path:
    return local_store_dir(root) / "spool"


def publish_or_spool(
    record: BuildRecord, *, root: Path, quiet: bool = False, release: Release | None = None
) -> dict[str, Any]:
    """Publish ``record``, then ``release`` it if given; on any failure spool it and say
    how to finish later (both steps are safe to repeat)."""
    uri = tracking_uri(root)
    try:
        problem = reachability_problem(uri)
    except Exception as exc:  # a malformed URI (urllib raises ValueError, InvalidURL)
        problem = f"{display_url(uri)} cannot be used ({type(exc).__name__})"
    if problem is None:
        try:
            store = Store(root, uri=uri, registry=release is not None)
            result = _publish_and_release(store, record, release)
        except Exception as exc:  # any store failure: keep the record, never fail the build
            first_line = str(exc).splitlines()[0] if str(exc) else ""
            problem = display_url(f"publishing to {uri} failed: {type(exc).__name__}: {first_line}")
            if "NBOPS_DEBUG" in __import__("os").environ:
                traceback.print_exc()
        else:
            if not quiet:
                counts = _counts(record)
                print(
                    f"nbops: recorded build as run {result['run_id']} in {_display(uri)} ({counts}).",
                    file=sys.stderr,
                )
            return result
    folder = record.spool(spool_dir(root))
    print(
        f"nbops: the tracking store is not available ({problem}). The build's record is kept in "
        f"{folder} and nothing is lost: run `nbops sync` when the store is back.",
        file=sys.stderr,
    )
    return {"spooled": str(folder), "tasks": {}}


def sync(root: Path, *, release: Release | None = None) -> list[tuple[str, str]]:
    """Publish (and ``release``) every spooled record of the project; return
    ``[(build id, run id)]``.

    Stops at the first record that still cannot be published (the rest stay spooled).

    Raises:
        TrackingError: after publishing the rest, when some spooled records were corrupt
            (each moved aside to ``<folder>.corrupt`` and named in the message).
    """
    from nbops.errors import TrackingError

    uri = tracking_uri(root)
    folders = spooled_records(spool_dir(root))
    if not folders:
        return []
    problem = reachability_problem(uri)
    if problem:
        raise TrackingError(
            f"Cannot sync {len(folders)} spooled build(s): {problem}. Check MLFLOW_TRACKING_URI and try again."
        )
    store = Store(root, uri=uri)
    done: list[tuple[str, str]] = []
    skipped: list[str] = []
    for folder in folders:
        try:
            record = load_spooled(folder)
        except TrackingError as exc:
            aside = folder.with_name(folder.name + ".corrupt")
            shutil.rmtree(aside, ignore_errors=True)
            folder.rename(aside)
            skipped.append(f"{exc} It was moved to {aside}.")
            continue
        result = _publish_and_release(store, record, release)
        shutil.rmtree(folder)
        done.append((record.build_id, result["run_id"]))
    if skipped:
        published = "; ".join(f"build {b[:12]} as run {r}" for b, r in done) or "none"
        raise TrackingError(
            f"Skipped {len(skipped)} corrupt spooled record(s): {' '.join(skipped)} "
            f"Published the other {len(done)} ({published}). Inspect the moved folder(s): "
            "fix record.json by hand and rename the folder back to sync it, or delete it."
        )
    return done


def _publish_and_release(
    store: Store, record: BuildRecord, release: Release | None
) -> dict[str, Any]:
    """Record the build, then release its model: two calls, both safe to repeat, so a
    record spooled after either failed is finished by ``nbops sync``. The release checks
    that the champion is still the one the gate compared against, however late it runs."""
    try:
        result = store.publish(record)
        if release is None:
            return result
        released = release(record, published=result, store=store)
        return {**result, "release": released} if released else result
    finally:
        store.checkpoint()


def _counts(record: BuildRecord) -> str:
    from collections import Counter

    counts = Counter(t.status for t in record.tasks)
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


def _display(uri: str) -> str:
    if uri.startswith("sqlite:///"):
        try:
            return str(Path(uri[len("sqlite:///") :]).relative_to(Path.cwd()))
        except ValueError:
            return uri
    return display_url(uri)
