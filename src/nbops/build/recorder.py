"""Publish a build's record from a child of its kernel template, not from the build.

Publishing imports MLflow and its SQL store: about 3 s of CPU. A build whose notebooks
run in forked kernels (:mod:`nbops.build.forks`) has a template process that imports
them anyway for the gate notebook, or can while it waits for the last notebooks. So the
build holds its template past the notebooks (:func:`held_template`), hands it the
finished record as data (:meth:`~nbops.tracking.record.BuildRecord.to_dict`), and a
child forked off it publishes and releases it (:func:`publish`, the same
:func:`~nbops.tracking.publish.publish_or_spool` and release step as ever, spooling
included); what the child prints is printed by the build, and the ``ploomber`` process
never imports MLflow.

The template only imports (no thread, no connection: forking stays safe). The child
is forked once the template has done its imports, opens the store while the last
notebooks run (:func:`open_store`, as the build's warm-up thread does otherwise) and
waits for the record, which the build sends when it finishes. Where there is no
template (the serial executor, another executor, forking unavailable or off,
``ploomber task NAME``), it has died, it refuses to fork, the record is not plain JSON,
or the tasks' own MLflow runs were opened in the build's process already, the build
publishes in its own process as before; the debug log says why (logger
``nbops.build.recorder``).

Part of the build runtime: imports :mod:`nbops.tracking` and :mod:`nbops.release` only
inside the child's function.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "RecordingFailed",
    "held_template",
    "open_store",
    "publish",
    "publish_in_template",
    "start_publisher",
]

log = logging.getLogger(__name__)

#: What the child imports to publish, which the template imports while it waits
#: (:mod:`nbops.build.forks` follows a module's ``__warm_imports__``): the publishing
#: and release code, MLflow's client and its SQL stores (the embedded store's). Not
#: the registry's model flavours: only a build whose gate ran releases, and the gate
#: notebook has the template import them.
__warm_imports__ = (
    "nbops.tracking.publish",
    "nbops.release.prepare",
    "mlflow.tracking",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
)


class RecordingFailed(Exception):
    """Publishing failed in the template's child in a way it could not spool (the
    traceback is the child's)."""

    def __init__(self, traceback: str) -> None:
        super().__init__(traceback.strip().splitlines()[-1] if traceback.strip() else "")
        self.traceback = traceback


def held_template() -> tuple[Any | None, str]:
    """The build's kernel template, held open until the record is published (the
    caller releases it), or None and why not."""
    kernels = sys.modules.get("nbops.build.kernels")  # not imported: no nbops executor
    template = getattr(getattr(kernels, "ForkKernelManager", None), "template", None)
    if template is None:
        return None, (
            "the build has no kernel template (not nbops' executor, fork_kernels off, "
            "forking unavailable, or no notebook to run)"
        )
    if not template.hold():
        return None, template.reason or "the kernel template was closed"
    return template, ""


def start_publisher(template: Any, *, root: Path) -> Any | None:
    """Fork the child of ``template`` that will publish the build's record: it opens
    the project's store now, while the notebooks run (a
    :class:`~nbops.build.forks.TemplateCall`), or None when the template cannot (the
    debug log says why). Waits until the template has done its imports."""
    from nbops.build.forks import TemplateUnavailable

    try:
        return template.call(
            f"{__name__}:publish",
            prepare=f"{__name__}:open_store",
            prepare_kwargs={"root": str(root)},
        )
    except TemplateUnavailable as exc:
        log.debug("the build will be recorded in this process: %s", exc)
        return None


def publish_in_template(publisher: Any, record: Any, *, root: Path) -> dict[str, Any] | None:
    """Have ``publisher`` (:func:`start_publisher`) publish ``record`` and release its
    model, printing what publishing prints; what
    :func:`~nbops.tracking.publish.publish_or_spool` returns, or None when it cannot
    (the caller then publishes; the debug log says why).

    Raises:
        RecordingFailed: the record could be neither published nor spooled.
    """
    from nbops.build.forks import TemplateUnavailable

    data = record.to_dict()
    try:
        exact = json.loads(json.dumps(data)) == data
    except (TypeError, ValueError):
        exact = False
    if not exact:
        # A tuple, a NaN, an object: the child would publish something else.
        publisher.cancel()
        log.debug("build recorded in this process: its record is not plain JSON")
        return None
    try:
        reply = publisher.run(
            {"record": data, "root": str(root)}, cwd=os.getcwd(), env=dict(os.environ)
        )
    except TemplateUnavailable as exc:
        log.debug("build recorded in this process: %s", exc)
        return None
    sys.stdout.write(reply.get("stdout", ""))
    sys.stderr.write(reply.get("stderr", ""))
    if "raised" in reply:
        raise RecordingFailed(reply["raised"])
    result: dict[str, Any] = reply["result"]
    return result


def open_store(root: str) -> None:
    """In the template's child, while the notebooks run: import MLflow's client and
    open the project's store (what the build's own warm-up thread does without a
    template), so that publishing at the end reuses it."""
    from nbops.tracking.store import warm_up

    warm_up(Path(root))


def publish(record: dict[str, Any], root: str) -> dict[str, Any]:
    """In the template's child, at the end of the build: publish the record and release
    its model, or spool it (what the build's process does without a template)."""
    from nbops.release.prepare import release_build
    from nbops.tracking.publish import publish_or_spool
    from nbops.tracking.record import BuildRecord

    return publish_or_spool(BuildRecord.from_dict(record), root=Path(root), release=release_build)
