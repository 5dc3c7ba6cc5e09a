"""Fixtures for tests/tracking: the shared ones (``make_server``, ``free_port``) live in
tests/conftest.py so pipeline tests can use a real MLflow server too."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.conftest import MlflowServer, free_port  # noqa: F401  (re-exported for these tests)


@pytest.fixture(scope="module")
def module_env() -> Iterator[None]:
    """The autouse isolation is per test; module-scoped stores need it too."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith(("NBOPS_", "MLFLOW_")):
                mp.delenv(name)
        yield
