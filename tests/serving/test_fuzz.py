"""Property-based bodies for /predict's validation and scoring: no input raises.

Whatever a client sends (dates at the edges of the calendar and in any offset, numbers
beyond float range, NaN and infinities, deep nesting, any unicode), validation answers
with field errors or typed rows, and both scorers score the typed rows: no 5xx.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbops.serving.compiled import compile_model
from nbops.serving.labels import relabel
from nbops.serving.validation import probe_batch, validate
from tests.serving.test_compiled import fitted, table  # noqa: F401 - fixture

pytestmark = pytest.mark.filterwarnings("ignore:`TargetEncoder.shuffle`:FutureWarning")

offsets = st.builds(
    timezone, st.timedeltas(min_value=-timedelta(hours=23), max_value=timedelta(hours=23))
)
dates = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23))
    .flatmap(lambda d: st.sampled_from([d, d.replace(tzinfo=timezone.utc)]))
    .map(lambda d: d.isoformat()),
    st.tuples(st.datetimes(), offsets).map(lambda p: p[0].replace(tzinfo=p[1]).isoformat()),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:00:00-05:00",
            "1677-09-21T00:12:43",
            "2262-04-11T23:47:16",
            "2024-02-30",
            "31/05/2024",
            "now",
            "NaT",
            " ",
        ]
    ),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["NaN", "Infinity", "-inf", "1e999", "N/A", "Yes", " 3 ", "", "０"]),
    dates,
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(), inner)),
    max_leaves=40,
)


def _deep(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.fixture(scope="module")
def models(table):  # noqa: F811 - the fixture imported above
    model, features = fitted(table, "linear", "churned", "classification", {})
    compiled = compile_model(model, probe=probe_batch(features))
    assert compiled is not None
    return model, compiled, features


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_body_makes_validation_or_scoring_raise(models, data):
    model, compiled, features = models
    names = [f.name for f in features]
    row = st.fixed_dictionaries(
        {name: values for name in names},
        optional={"extra": values, "nested": st.integers(1, 400).map(_deep)},
    )
    body = data.draw(
        st.one_of(
            st.fixed_dictionaries({"records": st.lists(row, min_size=1, max_size=4)}),
            st.fixed_dictionaries(
                {
                    "columns": st.fixed_dictionaries(
                        {n: st.lists(values, min_size=2, max_size=2) for n in names}
                    )
                }
            ),
            values,
        )
    )
    batch, errors = validate(body, features, max_rows=10, reject_unseen=data.draw(st.booleans()))
    if errors:
        assert batch is None
        orjson.dumps([e.to_dict() for e in errors])  # the 422 body can be written
        assert all(isinstance(e.msg, str) and e.loc[0] == "body" for e in errors)
        return
    fast = compiled.predict_proba(batch.columns, batch.n_rows)
    slow = model.predict_proba(batch.frame())
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-12)
    result = {
        "predictions": model.classes_[fast.argmax(axis=1)].tolist(),
        "probabilities": [
            dict(zip(map(str, model.classes_), r, strict=True)) for r in fast.tolist()
        ],
    }
    orjson.dumps(relabel(result, model.classes_, [False, True]))


@pytest.mark.parametrize("date", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00"])
def test_dates_beyond_the_calendar_in_utc_are_a_field_error(models, date):
    _, _, features = models
    row = {f.name: None for f in features} | {"signup_date": date}
    batch, errors = validate({"records": [row]}, features, max_rows=10)
    assert batch is None
    assert [e.loc for e in errors] == [["body", "records", 0, "signup_date"]]
    assert errors[0].msg.startswith(f"date {date!r} is outside the range the model reads")
