"""The comparison at the end of ``nbops reproduce``: verdicts per metric."""

from __future__ import annotations

from pathlib import Path

from nbops.commands.reproduce import (
    DIFFERS,
    MATCH,
    MISSING,
    TIMING,
    WITHIN,
    Reproduction,
    compare_metrics,
    unrestored_inputs,
)


def _verdicts(recorded, reproduced, **kw):
    return {c.name: c.verdict for c in compare_metrics(recorded, reproduced, **kw)}


def test_identical_metrics_match_exactly() -> None:
    assert _verdicts(
        {"evaluate.roc_auc": 0.81, "evaluate.rows": 375.0},
        {"evaluate.roc_auc": 0.81, "evaluate.rows": 375.0},
    ) == {
        "evaluate.roc_auc": MATCH,
        "evaluate.rows": MATCH,
    }


def test_exact_comparison_flags_the_last_bit_and_tolerance_is_relative() -> None:
    a, b = {"m": 0.1 + 0.2}, {"m": 0.3}

    assert _verdicts(a, b) == {"m": DIFFERS}
    assert _verdicts(a, b, tolerance=1e-12) == {"m": WITHIN}
    assert _verdicts({"m": 100.0}, {"m": 101.0}, tolerance=0.001) == {"m": DIFFERS}
    assert _verdicts({"m": 100.0}, {"m": 100.05}, tolerance=0.001) == {"m": WITHIN}


def test_a_metric_on_one_side_only_is_missing_and_nan_matches_nan() -> None:
    verdicts = _verdicts({"a": 1.0, "n": float("nan")}, {"b": 1.0, "n": float("nan")})

    assert verdicts == {"a": MISSING, "b": MISSING, "n": MATCH}


def test_timings_are_reported_but_not_judged() -> None:
    checks = compare_metrics(
        {"gate.latency_ms_per_row": 1.2, "train.fit_seconds": 3.0, "evaluate.roc_auc": 0.8},
        {"gate.latency_ms_per_row": 2.9, "train.fit_seconds": 4.0, "evaluate.roc_auc": 0.8},
    )

    assert {c.name: c.verdict for c in checks}["gate.latency_ms_per_row"] == TIMING
    assert {c.name: c.verdict for c in checks}["train.fit_seconds"] == TIMING
    assert all(c.ok for c in checks)


def test_the_report_says_which_metric_differs_and_why_it_may() -> None:
    result = Reproduction(run_id="a" * 32, commit="b" * 40, project=Path("/tmp/x"), tolerance=0)
    result.build_ok = True
    result.data_recorded = result.data_reproduced = "sha256:abc"
    result.checks = compare_metrics({"evaluate.roc_auc": 0.8}, {"evaluate.roc_auc": 0.79})
    result.package_changes = ["scikit-learn: 1.5.0 recorded, 1.6.1 now"]

    text = result.render()

    assert not result.matches
    assert "evaluate.roc_auc" in text and DIFFERS in text
    assert "scikit-learn: 1.5.0 recorded, 1.6.1 now" in text
    assert "NOT REPRODUCED: 0/1 metrics match" in text


def test_different_data_is_not_a_reproduction_even_with_equal_metrics() -> None:
    result = Reproduction(run_id="a" * 32, commit="b" * 40, project=Path("/tmp/x"), tolerance=0)
    result.build_ok = True
    result.data_recorded, result.data_reproduced = "sha256:abc", "sha256:def"
    result.checks = compare_metrics({"m": 1.0}, {"m": 1.0})

    assert not result.matches
    assert "data: DIFFERS" in result.render()


def test_a_build_with_no_metrics_is_not_reproduced_and_says_why() -> None:
    result = Reproduction(run_id="a" * 32, commit="b" * 40, project=Path("/tmp/x"), tolerance=0)
    result.build_ok = True
    result.checks = compare_metrics({"fit.duration_s": 1.0}, {"fit.duration_s": 1.4})

    text = result.render()

    assert not result.matches
    assert "0/0" not in text
    assert text.splitlines()[-1].startswith(
        f"NOT REPRODUCED: build {'a' * 12} recorded no metrics (timings aside)"
    )
    assert "mlflow.log_metric" in text


def test_inputs_the_commit_does_not_hold_are_named(tmp_path: Path) -> None:
    import subprocess

    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    (root / "output").mkdir()
    (root / ".gitignore").write_text("data/\noutput/\n.nbops/\n")
    (root / "tasks.py").write_text("# code\n")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "."], cwd=root, check=True)
    (root / "data" / "raw.csv").write_text("x\n1\n")  # ignored: read by the build
    (root / "notes.txt").write_text("untracked\n")
    (root / "output" / "clean.csv").write_text("x\n1\n")  # a product
    (root / ".nbops").mkdir()
    (root / ".nbops" / "mlflow.db").write_text("")
    rebuilt = tmp_path / "worktree"
    rebuilt.mkdir()
    record = {"tasks": [{"name": "clean", "products": {"product": str(root / "output/clean.csv")}}]}

    found = unrestored_inputs(root, rebuilt, record)

    assert found == ["data/raw.csv", "notes.txt"]
    text = Reproduction(
        run_id="a" * 32, commit="b" * 40, project=rebuilt, tolerance=0, unrestored=found
    ).render()
    assert "inputs not restored (not in the commit: git-ignored or untracked): data/raw.csv" in text
