"""The prediction service (``nbops serve``): the registry's champion over HTTP.

- ``settings``: configuration, resolved once from arguments and ``NBOPS_*`` variables;
- ``model``: the served model, loaded from the registry with its hash checked, plus the
  feature contract it was trained on;
- ``validation``: JSON body → typed DataFrame, or a list of field errors (pure; no HTTP);
- ``log``: the prediction log, written in batches off the request path (SQLAlchemy:
  SQLite in WAL mode by default, PostgreSQL in production);
- ``app``: the FastAPI app factory ``create_app(settings)``; thin.
"""

from __future__ import annotations
