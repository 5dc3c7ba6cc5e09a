"""Fixtures for tests/tracking: the shared ones (``make_server``, ``free_port``,
``module_env``) live in tests/conftest.py so pipeline and command tests can use them too."""

from __future__ import annotations

from tests.conftest import MlflowServer, free_port  # noqa: F401  (re-exported for these tests)
