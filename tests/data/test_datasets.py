"""The bundled churn-like dataset: reproducible, block-seeded, realistic, drift-able."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from nbops.data import datasets
from nbops.data.datasets import BLOCK_ROWS, TARGET, iter_churn, make_churn, write_churn
from nbops.data.sources import read_table
from nbops.data.target import prepare_target
from nbops.errors import NbopsError
from nbops.modeling.models import make_model
from nbops.modeling.roles import infer_roles
from nbops.modeling.split import split_frame


@pytest.fixture(scope="module")
def churn_5k() -> pd.DataFrame:
    return make_churn(5_000, seed=11)


@pytest.fixture(scope="module")
def drifted_5k() -> pd.DataFrame:
    return make_churn(5_000, seed=11, drift=1.0)


def test_same_seed_gives_same_rows() -> None:
    pd.testing.assert_frame_equal(make_churn(500, seed=7), make_churn(500, seed=7))


def test_different_seed_gives_different_rows() -> None:
    a, b = make_churn(500, seed=7), make_churn(500, seed=8)
    assert not a["monthly_charges"].equals(b["monthly_charges"])


@pytest.mark.parametrize(
    ("small", "large"),
    [(10, 1_000), (1_000, 5_000), (BLOCK_ROWS + 100, BLOCK_ROWS + 3_000)],
    ids=["tiny", "within-one-block", "across-a-block-boundary"],
)
def test_smaller_table_is_a_prefix_of_a_larger_one(small: int, large: int) -> None:
    pd.testing.assert_frame_equal(make_churn(small, seed=3), make_churn(large, seed=3).head(small))


def test_blocks_are_seeded_independently(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets, "BLOCK_ROWS", 1_000)
    blocks = list(iter_churn(2_500, seed=5))
    assert [len(b) for b in blocks] == [1_000, 1_000, 500]
    whole = make_churn(2_500, seed=5)
    pd.testing.assert_frame_equal(pd.concat(blocks, ignore_index=True), whole)
    # Asking for more rows never changes the rows already there, in any block.
    pd.testing.assert_frame_equal(make_churn(1_700, seed=5), whole.head(1_700))
    assert whole["customer_id"].is_unique


def test_ids_stay_unique_across_real_blocks() -> None:
    frame = make_churn(BLOCK_ROWS + 50, seed=1)
    assert frame["customer_id"].is_unique
    assert frame["customer_id"].iloc[-1] == f"C{BLOCK_ROWS + 49:08d}"


def _has_missing(s: pd.Series) -> bool:
    return bool(s.isna().any())


@pytest.mark.parametrize(
    ("column", "check"),
    [
        ("customer_id", lambda s: pd.api.types.is_string_dtype(s.dtype) and s.is_unique),
        ("signup_date", lambda s: pd.api.types.is_datetime64_any_dtype(s.dtype)),
        ("tenure_months", lambda s: pd.api.types.is_integer_dtype(s.dtype)),
        ("monthly_charges", lambda s: pd.api.types.is_float_dtype(s.dtype) and s.min() > 0),
        ("plan", lambda s: pd.api.types.is_string_dtype(s.dtype) and 2 <= s.nunique() <= 10),
        ("region", lambda s: pd.api.types.is_string_dtype(s.dtype) and 2 <= s.nunique() <= 10),
        ("auto_renew", lambda s: pd.api.types.is_bool_dtype(s.dtype)),
        ("has_discount", lambda s: pd.api.types.is_bool_dtype(s.dtype) and _has_missing(s)),
        ("payment_method", lambda s: pd.api.types.is_string_dtype(s.dtype) and _has_missing(s)),
        ("total_charges", _has_missing),
        ("avg_session_minutes", _has_missing),
        ("satisfaction_score", lambda s: _has_missing(s) and s.dropna().between(1, 5).all()),
        (TARGET, lambda s: pd.api.types.is_bool_dtype(s.dtype) and not _has_missing(s)),
    ],
)
def test_table_has_columns_of_every_kind(
    churn_5k: pd.DataFrame, column: str, check: Callable[[pd.Series], bool]
) -> None:
    assert check(churn_5k[column])


def test_table_shape(churn_5k: pd.DataFrame) -> None:
    assert churn_5k.shape == (5_000, 16)
    assert churn_5k.columns[-1] == TARGET


def test_label_is_learnable_but_not_trivial(churn_5k: pd.DataFrame) -> None:
    frame, info = prepare_target(churn_5k, TARGET, "classification")
    roles = infer_roles(frame, target=TARGET)
    train, test = split_frame(frame, info, seed=0)
    model = make_model("linear", task="classification", roles=roles)
    model.fit(train.drop(columns=TARGET), train[TARGET])
    proba = model.predict_proba(test.drop(columns=TARGET))[:, list(model.classes_).index(True)]
    auc = roc_auc_score(test[TARGET], proba)
    assert 0.6 < auc < 0.95
    assert 0.1 < churn_5k[TARGET].mean() < 0.5


@pytest.mark.parametrize(
    ("statistic", "direction"),
    [
        (lambda f: f["monthly_charges"].mean(), "up"),
        (lambda f: f["support_calls"].mean(), "up"),
        (lambda f: f[TARGET].mean(), "up"),
        (lambda f: f["satisfaction_score"].mean(), "down"),
        (lambda f: f["satisfaction_score"].isna().mean(), "up"),
        (lambda f: f["avg_session_minutes"].mean(), "down"),
    ],
    ids=[
        "mean-monthly-charges",
        "mean-support-calls",
        "positive-rate",
        "mean-satisfaction",
        "missing-satisfaction",
        "mean-session-minutes",
    ],
)
def test_drift_shifts_distributions_and_label(
    churn_5k: pd.DataFrame,
    drifted_5k: pd.DataFrame,
    statistic: Callable[[pd.DataFrame], float],
    direction: str,
) -> None:
    reference, drifted = statistic(churn_5k), statistic(drifted_5k)
    # A strong, obvious shift: at least 15% relative change in the expected direction.
    if direction == "up":
        assert drifted > 1.15 * reference
    else:
        assert drifted < 0.85 * reference


def test_drift_keeps_schema(churn_5k: pd.DataFrame, drifted_5k: pd.DataFrame) -> None:
    assert list(drifted_5k.columns) == list(churn_5k.columns)
    assert drifted_5k.dtypes.equals(churn_5k.dtypes)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_write_churn_streams_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    monkeypatch.setattr(datasets, "BLOCK_ROWS", 100)  # several blocks, appended one by one
    path = write_churn(tmp_path / "nested" / f"churn{suffix}", 250, seed=2)
    assert path.exists()
    back = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
    assert len(back) == 250
    assert list(back.columns) == list(make_churn(250, seed=2).columns)  # header written once
    assert back["customer_id"].is_unique


def test_write_churn_parquet_has_the_generated_rows(tmp_path: Path) -> None:
    path = write_churn(tmp_path / "churn.parquet", 300, seed=4, drift=0.5)
    assert pq.ParquetFile(path).metadata.num_rows == 300
    pd.testing.assert_frame_equal(
        pd.read_parquet(path), make_churn(300, seed=4, drift=0.5), check_dtype=False
    )


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_ten_rows_work(tmp_path: Path, suffix: str) -> None:
    assert make_churn(10).shape == (10, 16)
    path = write_churn(tmp_path / f"small{suffix}", 10)
    assert len(read_table(path).frame) == 10


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_rows": 0}, "n_rows must be at least 1, got 0"),
        ({"n_rows": -5}, "n_rows must be at least 1, got -5"),
        ({"n_rows": 10, "drift": -0.1}, "drift must be 0 or more, got -0.1"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_churn(**kwargs)


def test_drift_zero_is_the_reference_world() -> None:
    pd.testing.assert_frame_equal(make_churn(200, seed=9, drift=0.0), make_churn(200, seed=9))
    assert not np.allclose(
        make_churn(200, seed=9, drift=0.5)["monthly_charges"],
        make_churn(200, seed=9)["monthly_charges"],
    )


def test_write_churn_uppercase_csv_suffix_writes_csv(tmp_path: Path) -> None:
    path = write_churn(tmp_path / "OUT.CSV", 20)
    assert path.read_bytes().startswith(b"customer_id,")
    assert len(read_table(path).frame) == 20


def test_write_churn_refuses_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises((ValueError, NbopsError), match=r"\.xlsx"):
        write_churn(tmp_path / "out.xlsx", 20)
    assert not (tmp_path / "out.xlsx").exists()
