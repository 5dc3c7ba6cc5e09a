"""Stage 2, modeling: from a snapshot to fitted, evaluated candidate models.

- ``split``: seeded train/test split (stratified, or by time);
- ``roles``: what each column is for, decided from its type and values;
- ``features``: the feature pipeline built from roles (scikit-learn transformers);
- ``models``: the candidate model families;
- ``evaluation``: metrics, slices, importance, and picking the best;
- ``plots``: the reports' figures.

May import :mod:`nbops.data`; never MLflow, Ploomber, papermill or FastAPI.
"""

from __future__ import annotations
