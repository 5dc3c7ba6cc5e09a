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
]
