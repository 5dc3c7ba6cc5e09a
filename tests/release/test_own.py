"""nbops.log_model outside a build: it says where it works (the build path is tested on
a real adopted project in tests/pipeline/test_adopt.py)."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

import nbops
from nbops.errors import ReleaseError


def test_log_model_outside_a_build_names_the_way_to_run_it() -> None:
    X = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    model = LinearRegression().fit(X, X["x"])

    with pytest.raises(
        ReleaseError, match=r"not such a build\. Run the notebook with `ploomber build`"
    ):
        nbops.log_model(model, X, test=(X, X["x"]))
