"""Fixtures for tests/tracking: the shared ones (``make_server``, ``free_port``) live in
tests/conftest.py so pipeline tests can use a real MLflow server too."""

from __future__ import annotations

from tests.conftest import MlflowServer, free_port  # noqa: F401  (re-exported for these tests)
