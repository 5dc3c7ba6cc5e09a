"""The bundled dataset: a seeded, churn-like customer table of any size.

Rows are produced in fixed blocks, each from its own random stream seeded by
``(seed, block)``, so memory stays bounded for any row count (10 to 10 million) and a
smaller table is always a prefix of a larger one with the same seed.

The table mixes what real data has: an ID column, numeric, categorical, boolean and
datetime columns, missing values, a learnable but noisy label. ``drift`` (0 = the
reference world, 1 = strongly shifted) moves the input distributions *and* the label
relationship, for monitoring work.

Example:
    >>> from nbops.data.datasets import make_churn
    >>> df = make_churn(1_000, seed=7)
    >>> df.shape
    (1000, 16)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from nbops.data.tables import write_frames
from nbops.errors import ConfigError

__all__ = ["BLOCK_ROWS", "TARGET", "iter_churn", "make_churn", "write_churn"]

#: Rows per internal block; fixed so that output does not depend on how it is read.
BLOCK_ROWS = 65_536
#: Name of the label column of the bundled dataset.
TARGET = "churned"

_PLANS = np.array(["basic", "standard", "premium", "enterprise"])
_REGIONS = np.array(["north", "south", "east", "west", "central"])
_PAYMENTS = np.array(["card", "bank_transfer", "paypal", "invoice"])
_REFERENCE_DATE = np.datetime64("2025-01-01")


def iter_churn(n_rows: int, *, seed: int = 42, drift: float = 0.0) -> Iterator[pd.DataFrame]:
    """Yield the bundled table in blocks of at most :data:`BLOCK_ROWS` rows.

    Args:
        n_rows: total number of rows (at least 1).
        seed: random seed; the same seed gives the same table.
        drift: 0.0 for the reference distribution; larger values shift inputs and the
            label relationship (1.0 is a strong, obvious shift).
    """
    if n_rows < 1:
        raise ValueError(f"n_rows must be at least 1, got {n_rows}")
    if drift < 0:
        raise ValueError(f"drift must be 0 or more, got {drift}")
    for block, start in enumerate(range(0, n_rows, BLOCK_ROWS)):
        size = min(BLOCK_ROWS, n_rows - start)
        rng = np.random.default_rng([seed, block])
        yield _block(rng, start=start, size=size, block_rows=BLOCK_ROWS, drift=drift)[:size]


def make_churn(n_rows: int, *, seed: int = 42, drift: float = 0.0) -> pd.DataFrame:
    """Return the bundled table with ``n_rows`` rows as one DataFrame."""
    return pd.concat(list(iter_churn(n_rows, seed=seed, drift=drift)), ignore_index=True)


def write_churn(path: str | Path, n_rows: int, *, seed: int = 42, drift: float = 0.0) -> Path:
    """Stream the bundled table to a Parquet or CSV file without holding it in memory."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in {".csv", ".parquet", ".pq"}:
        raise ConfigError(f"Cannot write the dataset to '{path}': name the file .parquet or .csv.")
    path.parent.mkdir(parents=True, exist_ok=True)
    blocks = iter_churn(n_rows, seed=seed, drift=drift)
    if suffix == ".csv":
        for i, block in enumerate(blocks):
            block.to_csv(path, mode="w" if i == 0 else "a", header=i == 0, index=False)
        return path
    return write_frames(blocks, path)


def _block(
    rng: np.random.Generator, *, start: int, size: int, block_rows: int, drift: float
) -> pd.DataFrame:
    # Every block draws a full BLOCK_ROWS so that a block's content never depends on
    # how many rows were asked for; the caller trims the last one.
    n = block_rows
    ids = np.arange(start, start + n)

    plan = _PLANS[
        _choice(rng, n, [0.40 - 0.15 * drift, 0.30, 0.20 + 0.1 * drift, 0.10 + 0.05 * drift])
    ]
    region = _REGIONS[_choice(rng, n, [0.25, 0.2, 0.2, 0.2, 0.15])]
    payment = _PAYMENTS[_choice(rng, n, [0.45, 0.25, 0.2 - 0.1 * drift, 0.1 + 0.1 * drift])]

    signup_days = rng.integers(0, 6 * 365, n)
    signup = _REFERENCE_DATE - signup_days.astype("timedelta64[D]")
    tenure_months = (signup_days // 30).astype(np.int64)

    plan_price = (
        pd.Series(plan)
        .map({"basic": 20.0, "standard": 45.0, "premium": 80.0, "enterprise": 150.0})
        .to_numpy()
    )
    monthly = np.round(plan_price * rng.lognormal(0.05 * drift, 0.15, n) * (1 + 0.3 * drift), 2)
    total = np.round(monthly * np.maximum(tenure_months, 0) * rng.uniform(0.9, 1.05, n), 2)
    support_calls = rng.poisson(1.2 + 1.5 * drift, n)
    sessions = np.round(rng.gamma(2.0, 12.0 * (1 - 0.3 * drift), n), 1)
    devices = rng.integers(1, 6, n)
    auto_renew = rng.random(n) < 0.55
    discount = rng.random(n) < 0.25
    satisfaction = np.clip(np.round(rng.normal(3.6 - 0.6 * drift, 0.9, n), 1), 1, 5)

    # The label: a logistic model with a non-linear term and an interaction, so a
    # tree model has something to find that a linear one misses.
    w_calls = 0.25 + 0.35 * drift
    w_renew = -1.1 * (1 - 0.6 * drift)
    logit = (
        -1.2
        + 1.6 * (tenure_months < 6)  # the first months are the riskiest
        - 0.02 * tenure_months
        + w_calls * support_calls
        + 0.9 * (support_calls >= 3)
        + w_renew * auto_renew
        - 0.7 * (satisfaction - 3.5)
        + 0.012 * (monthly - 50)
        + 0.9 * (payment == "invoice")
        - 0.5 * discount
        + 1.6 * ((plan == "basic") & (sessions < 10))
        + 0.9 * ((region == "south") & (support_calls > 2))
    )
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))
    churned ^= rng.random(n) < 0.05  # label noise

    # Missing values, the way real exports have them.
    total = np.where(tenure_months == 0, np.nan, total)  # brand-new customers: not billed yet
    sessions = np.where(rng.random(n) < 0.05, np.nan, sessions)
    satisfaction = np.where(rng.random(n) < 0.10 + 0.2 * drift, np.nan, satisfaction)
    payment = np.where(rng.random(n) < 0.02, None, payment)
    discount_col = pd.array(discount, dtype="boolean")
    discount_col[rng.random(n) < 0.03] = pd.NA

    return pd.DataFrame(
        {
            "customer_id": pd.array([f"C{i:08d}" for i in ids], dtype="string"),
            "signup_date": signup.astype("datetime64[ns]"),
            "tenure_months": tenure_months,
            "plan": pd.array(plan, dtype="string"),
            "region": pd.array(region, dtype="string"),
            "payment_method": pd.array(payment, dtype="string"),
            "monthly_charges": monthly,
            "total_charges": total,
            "support_calls": support_calls.astype(np.int64),
            "avg_session_minutes": sessions,
            "devices": devices.astype(np.int64),
            "auto_renew": auto_renew,
            "has_discount": discount_col,
            "satisfaction_score": satisfaction,
            "last_contact_channel": pd.array(
                np.array(["email", "phone", "chat", "none"])[
                    _choice(rng, n, [0.4, 0.25, 0.2, 0.15])
                ],
                dtype="string",
            ),
            TARGET: churned,
        }
    )


def _choice(rng: np.random.Generator, n: int, weights: list[float]) -> np.ndarray:
    p = np.clip(np.asarray(weights, dtype=float), 1e-6, None)
    return rng.choice(len(p), size=n, p=p / p.sum())
