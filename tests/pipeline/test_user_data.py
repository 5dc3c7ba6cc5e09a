"""Bring your own data through the reference pipeline, as the manual tells a user to
(a schema drafted by `nbops schema infer`, then the build with overrides): a
deliberately messy CSV. The datasets scikit-learn ships go through `nbops init` in
test_sklearn_datasets.py."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.pipeline


def build_own_data(project, csv, *, target, task="classification"):
    """The README's steps: draft a schema from the data, then build with overrides."""
    draft = project.nbops("schema", "infer", str(csv), "--target", target)
    (project.root / "schema" / "own.yaml").write_text(draft.stdout)
    project.build(
        "--env--data--source",
        str(csv),
        "--env--data--target",
        target,
        "--env--task",
        task,
        "--env--schema",
        "schema/own.yaml",
    )
    metrics = json.loads((project.products / "metrics.json").read_text())
    plan = json.loads((project.products / "data" / "features.json").read_text())
    return metrics, {r["column"]: r["role"] for r in plan["roles"]}


def messy_customers(n=600, seed=3):
    """A CSV with the traps real exports have."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 72, n)
    monthly = np.round(rng.uniform(18, 120, n), 2)
    calls = rng.poisson(1.5, n)
    churn = rng.random(n) < 1 / (
        1 + np.exp(-(-0.5 - 0.05 * tenure + 0.6 * calls + 0.01 * (monthly - 60)))
    )
    formats = ["%Y-%m-%d", "%m/%d/%Y", "%Y/%m/%d %H:%M", "%d %b %Y"]
    dates = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1500, n), unit="D")
    total = [" " if t == 0 else f"{m * t:.2f}" for m, t in zip(monthly, tenure, strict=True)]
    return pd.DataFrame(
        {
            "customerID": [
                f"{rng.integers(1000, 9999)}-{''.join(rng.choice(list('ABCDEFGHJK'), 5))}{i}"
                for i in range(n)
            ],
            "gender": rng.choice(["Male", "Female"], n),
            "Region": rng.choice(
                ["NA", "EU", "APAC", "LATAM"], n
            ),  # "NA" is North America, not missing
            "tenure": tenure.astype(str),
            "MonthlyCharges": [("N/A" if rng.random() < 0.03 else f" {m} ") for m in monthly],
            "TotalCharges": total,  # numbers stored as text, blank for new customers
            "SupportCalls": calls,
            "SignupDate": [d.strftime(formats[i % 4]) for i, d in enumerate(dates)],
            "City": [f"city_{k}" for k in rng.integers(0, 120, n)],
            "Notes": [f"called on {d:%Y-%m-%d} about ticket {i}" for i, d in enumerate(dates)],
            "SourceSystem": "crm",
            "Churn": np.where(churn, "Yes", "No"),
        }
    )


def test_messy_csv_just_works(make_project, tmp_path):
    csv = tmp_path / "customers.csv"
    messy_customers().to_csv(csv, index=False)
    project = make_project()

    metrics, roles = build_own_data(project, csv, target="Churn")

    assert roles == {
        "customerID": "drop",
        "gender": "categorical",
        "Region": "categorical",
        "tenure": "numeric",
        "MonthlyCharges": "numeric",
        "TotalCharges": "numeric",
        "SupportCalls": "numeric",
        "SignupDate": "datetime",
        "City": "high_cardinality",
        "Notes": "drop",
        "SourceSystem": "drop",
    }
    snapshot = pd.read_parquet(project.products / "data" / "snapshot.parquet")
    assert set(snapshot["Region"]) == {"NA", "EU", "APAC", "LATAM"}
    assert snapshot["TotalCharges"].isna().sum() == (messy_customers()["tenure"] == "0").sum()
    assert snapshot["SignupDate"].notna().all()
    assert metrics["metrics"]["roc_auc"] > 0.7
    assert metrics["slice_column"] == "gender"
