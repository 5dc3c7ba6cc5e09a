"""nbops: Jupyter notebooks to production ML with the discipline of DevOps.

The public API for notebook authors is re-exported here; everything else is internal
and may change. The manual (docs/) describes the commands.
"""

from __future__ import annotations

from nbops.errors import (
    ConfigError,
    DataError,
    DataSourceError,
    NbopsError,
    ReleaseError,
    SchemaError,
    SchemaViolationError,
    TargetError,
    TrackingError,
)

__version__ = "0.2.0"

from nbops import _compat, _ipython

_compat.install()  # 0.1 module names (nbops.modeling.features, nbops.build.hooks...) keep working
_ipython.install()


def log_model(model: object, input_example: object, **options: object) -> object:
    """Gate a model trained in your notebook against the champion and release it with
    the build: see :func:`nbops.release.own.log_model`.

    Example:
        >>> nbops.log_model(model, X_test.head(5), test=(X_test, y_test))  # doctest: +SKIP
    """
    from nbops.release.own import log_model as log

    return log(model, input_example, **options)  # type: ignore[arg-type]


__all__ = [
    "ConfigError",
    "DataError",
    "DataSourceError",
    "NbopsError",
    "ReleaseError",
    "SchemaError",
    "SchemaViolationError",
    "TargetError",
    "TrackingError",
    "__version__",
    "log_model",
]
