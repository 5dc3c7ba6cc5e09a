"""Stage 1, data: the user's table in, a typed, validated, frozen snapshot out.

- ``sources``: reading CSV/TSV/Parquet and typing messy text columns;
- ``rawtext``: the conversions of text as it appears in a file (numbers with blanks,
  yes/no booleans, dates in many formats), shared by ingest and the prediction service;
- ``tables``: Parquet a column or a set of rows at a time (bounded memory);
- ``datasets``: the bundled, seeded churn-like generator;
- ``snapshot``: the exact table a build trained on, with its content hash;
- ``target``: the learning task and its target column;
- ``schema``: the data contract (pandera YAML) and column-by-column validation;
- ``artifacts``: the pipeline's small products between tasks (JSON, fitted models).

The bottom of the stage library: imports nothing else from nbops but ``errors`` and
``hashing``, and no MLflow, Ploomber, papermill or FastAPI (import-linter checks it).
"""

from __future__ import annotations
