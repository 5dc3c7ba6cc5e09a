"""The paper trail: every ``ploomber build`` recorded as a versioned run in MLflow.

What lives here, and what each module may import:

- ``redact``, ``lineage``: pure helpers (secret redaction; git state, file hashes,
  package freeze). Standard library only, plus ``git`` as a subprocess.
- ``record``: the build record as plain data, assembled while Ploomber runs and saved to
  a local spool folder when the store cannot take it. No MLflow.
- ``hooks``: the Ploomber hooks declared in ``pipeline.yaml``. They only collect into
  the record; the heavy work happens once, at the end of the build.
- ``store``: the only module that talks to MLflow (publish, content-addressed data,
  queries). Imported lazily, and warmed up in a background thread during the build.
- ``taskruns``: the build's run and a nested run per task, opened before the tasks
  run so a task's own ``mlflow.log_*`` calls land in its run (a scratch store in the
  build's temporary folder when the store is unreachable). Through ``store``.
- ``review``: what ``nbops runs list/show/diff`` and ``nbops report`` compute from the
  store.

Where records go: ``MLFLOW_TRACKING_URI`` when set (a team's tracking server),
otherwise the embedded store in the project's ``.nbops/`` folder (SQLite database
``mlflow.db`` plus ``artifacts/``). ``NBOPS_TRACKING=off`` disables recording.
"""

from __future__ import annotations

import os

# MLflow 3 reports usage to its vendor unless told not to: a config fetch, then a sender
# thread that every process waits on at exit (seconds, on a machine with no way out).
# nbops makes no cloud calls; set here, before nbops imports MLflow, for this process and
# every one it starts (the environment's start-up hook sets it too: nbops.build.offline).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
