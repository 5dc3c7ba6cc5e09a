"""Every error nbops raises on purpose, in one place.

The hierarchy::

    NbopsError                 root: anything a user can fix by changing input or config
    ├── ConfigError            env.yaml / pipeline parameters are wrong (task, model name, ...)
    ├── DataError              the dataset cannot be used
    │   ├── DataSourceError    missing, empty, unreadable or unparseable file
    │   └── TargetError        target column missing, single class, wrong type for the task
    ├── SchemaError            the pandera schema file is missing or unreadable
    │   └── SchemaViolationError   the data breaks the schema (carries the report)
    ├── TrackingError          the run store cannot answer (unknown run, unreachable server)
    └── ReleaseError           a registry change is not possible (unknown version, no previous, ...)

Messages are one paragraph: what failed, on which object, and how to fix it. The CLI
prints them without a traceback; notebooks let them stop the build.
"""

from __future__ import annotations


class NbopsError(Exception):
    """Root of every error nbops raises deliberately."""


class ConfigError(NbopsError):
    """A setting in env.yaml or a pipeline parameter is invalid."""


class DataError(NbopsError):
    """The dataset cannot be used as given."""


class DataSourceError(DataError):
    """The data file is missing, empty, unreadable or cannot be parsed."""


class TargetError(DataError):
    """The target column is missing or unusable for the chosen task."""


class SchemaError(NbopsError):
    """The schema file is missing or cannot be read."""


class SchemaViolationError(SchemaError):
    """The data does not satisfy the schema.

    Attributes:
        report: the :class:`nbops.data.schema.ValidationReport` with every failure.
    """

    def __init__(self, message: str, report: object) -> None:
        super().__init__(message)
        self.report = report


class TrackingError(NbopsError):
    """The tracking store cannot answer: an unknown run id, an unreachable server."""


class ReleaseError(NbopsError):
    """A registry change is not possible: unknown model or version, nothing to roll back to."""
