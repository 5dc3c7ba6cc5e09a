"""Test data for records: a finished build's :class:`BuildRecord`, made in one place so
the tests of publishing, the store and releasing build it alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nbops.tracking.record import BuildRecord, TaskRecord

#: When the builds of a test start, unless it says otherwise (a fixed clock: stable runs).
T0 = 1_700_000_000.0


def finished_build(
    root: Path,
    *,
    build_id: str = "build-1",
    started_at: float = T0,
    seconds: float = 10.0,
    trigger: str = "manual",
    tasks: list[TaskRecord] | None = None,
    **fields: Any,
) -> BuildRecord:
    """The record of a ``ploomber build`` of the project in ``root`` that finished
    ``seconds`` after ``started_at``; ``fields`` set any other BuildRecord field
    (``release``, ``metrics``, ``data``, ...)."""
    return BuildRecord(
        build_id=build_id,
        project=root.name,
        root=str(root),
        command=["ploomber", "build"],
        trigger=trigger,
        started_at=started_at,
        ended_at=started_at + seconds,
        status="FINISHED",
        tasks=list(tasks or []),
        **fields,
    )
