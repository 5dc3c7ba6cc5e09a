"""What the safe model format and the release cost, next to what a user would otherwise do.

1. Saving and loading the reference pipelines (linear, HistGradientBoosting) with skops
   (as nbops registers them: no code runs on load) against joblib/pickle (the usual
   choice, which runs arbitrary code on load): seconds and file size.
2. Saving an MLflow model with requirements inferred (MLflow's default) against the
   pinned requirements nbops passes.

Usage (from the repository root, in the project's venv):
    .venv/bin/python benchmarks/release.py [--rows 5000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import joblib
import skops.io as sio

from nbops.data.datasets import make_churn
from nbops.modeling.models import make_model
from nbops.modeling.roles import infer_roles
from nbops.release.prepare import release_requirements


def best_of(repeats: int, action) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    frame = make_churn(args.rows)
    X, y = frame.drop(columns="churned"), frame["churned"]
    roles = infer_roles(frame, target="churned")
    print(f"Model formats, reference pipelines on {args.rows:,} rows, median of {args.repeats}:")
    print(
        f"  {'model':8} {'skops save':>11} {'skops load':>11} {'skops size':>11} | {'joblib save':>11} {'joblib load':>11} {'joblib size':>11}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name, params in (("linear", {}), ("hgb", {"max_iter": 150})):
            model = make_model(name, task="classification", roles=roles, hyperparams=params).fit(
                X, y
            )
            trusted = sio.get_untrusted_types(data=sio.dumps(model))
            skops_path, joblib_path = Path(tmp, f"{name}.skops"), Path(tmp, f"{name}.joblib")
            s_save = best_of(args.repeats, lambda m=model, p=skops_path: sio.dump(m, p))
            s_load = best_of(args.repeats, lambda p=skops_path, t=trusted: sio.load(p, trusted=t))
            j_save = best_of(args.repeats, lambda m=model, p=joblib_path: joblib.dump(m, p))
            j_load = best_of(args.repeats, lambda p=joblib_path: joblib.load(p))
            print(
                f"  {name:8} {s_save * 1000:9.1f}ms {s_load * 1000:9.1f}ms {skops_path.stat().st_size / 1024:8.0f}KiB |"
                f" {j_save * 1000:9.1f}ms {j_load * 1000:9.1f}ms {joblib_path.stat().st_size / 1024:8.0f}KiB"
                f"   load ratio skops/joblib {s_load / j_load:.1f}x"
            )

        import mlflow.sklearn

        model = make_model(
            "hgb", task="classification", roles=roles, hyperparams={"max_iter": 50}
        ).fit(X, y)
        trusted = sio.get_untrusted_types(data=sio.dumps(model))
        counter = iter(range(1000))

        def save(**kwargs):
            mlflow.sklearn.save_model(
                model,
                str(Path(tmp, f"m{next(counter)}")),
                serialization_format="skops",
                skops_trusted_types=trusted,
                **kwargs,
            )

        save(pip_requirements=release_requirements())  # warm imports
        inferred = best_of(3, save)
        pinned = best_of(3, lambda: save(pip_requirements=release_requirements()))
        print("\nMLflow model save (skops), median of 3:")
        print(f"  requirements inferred (MLflow default)    {inferred:6.2f} s")
        print(
            f"  requirements pinned (what nbops does)     {pinned:6.2f} s   ratio {inferred / pinned:.0f}x"
        )


if __name__ == "__main__":
    main()
