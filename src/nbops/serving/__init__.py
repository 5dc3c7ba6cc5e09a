"""The prediction service (``nbops serve``): the registry's champion over HTTP.

- ``settings``: configuration, resolved once from arguments and ``NBOPS_*`` variables;
- ``model``: the served model, loaded from the registry with its hash checked, plus the
  feature contract it was trained on;
- ``validation``: JSON body → validated rows (and the typed DataFrame on demand), or a
  list of field errors (pure; no HTTP);
- ``labels``: the estimator's classes mapped back to the training labels, so answers
  use the labels ``GET /model`` lists;
- ``compiled``: the fitted pipeline as a few numpy operations, checked against the
  pipeline on probe rows before use (pure; numpy and scikit-learn only);
- ``stored``: a linear model's compiled scorer stored inside ``model.skops`` at
  registration and read back (hash checked, arrays only) without scikit-learn or skops;
- ``log``: the prediction log, written in batches off the request path (SQLAlchemy:
  SQLite in WAL mode by default, PostgreSQL in production);
- ``app``: the app factory ``create_app(settings)``: a raw ASGI fast path for
  ``POST /predict`` in front of the FastAPI app that serves everything else; thin.
"""

from __future__ import annotations
