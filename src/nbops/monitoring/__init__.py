"""Stage 4, monitoring: is the served model still seeing the data it learned on?

- ``drift``: drift statistics against a reference profile computed once at training
  (pure numpy; no I/O);
- ``live``: windows of served traffic, live metrics from feedback, and alarms;
- ``windows``: how far back a window reaches (``7d``), parsed without pandas;
- ``watch``: where monitoring gets its data (the serving model's reference profile, the
  prediction log, a batch file) and the monitoring build runner.

``drift``, ``live`` and ``windows`` are stage library (no MLflow, Ploomber, papermill or FastAPI);
``watch`` reaches the registry through :mod:`nbops.tracking`.
"""

from __future__ import annotations
