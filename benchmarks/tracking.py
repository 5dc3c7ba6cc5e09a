"""Benchmark the paper trail against what a user would otherwise run.

1. Capture overhead: the reference pipeline built with ``ploomber build --force`` with
   recording off (plain Ploomber, ``NBOPS_TRACKING=off``) and on, alternated, in a
   temporary copy of the project. Prints median wall times, their ratio, and the time
   spent inside nbops' hooks as a share of the build (target: at most 10%).
2. ``nbops runs list`` over a store holding 1,000 builds (target: under 2 s), next to
   ``mlflow runs list`` on the same experiment.

Usage (from the repository root, in the project's venv):
    .venv/bin/python benchmarks/tracking.py [--repeats 3] [--rows 5000] [--runs 1000]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def copy_project(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("pipeline.yaml", "env.yaml", "notebooks", "schema"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest / name)
    return dest


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return elapsed, result.stderr


def capture_overhead(repeats: int, rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        project = copy_project(Path(tmp))
        env = {**os.environ, "PLOOMBER_STATS_ENABLED": "false", "NBOPS_TIMING": "1"}
        env.pop("MLFLOW_TRACKING_URI", None)
        cmd = [str(BIN / "ploomber"), "build", "--force", "--env--data--rows", str(rows)]
        timed(cmd, project, {**env, "NBOPS_TRACKING": "on"})  # warm caches, create the store
        off, on, hooks = [], [], []
        for _ in range(repeats):
            off.append(timed(cmd, project, {**env, "NBOPS_TRACKING": "off"})[0])
            seconds, stderr = timed(cmd, project, {**env, "NBOPS_TRACKING": "on"})
            on.append(seconds)
            match = re.findall(r"nbops: capture took ([\d.]+) s", stderr)
            hooks.append(float(match[-1]) if match else float("nan"))
        m_off, m_on, m_hooks = (
            statistics.median(off),
            statistics.median(on),
            statistics.median(hooks),
        )
        print(
            f"Capture overhead, reference pipeline ({rows:,} rows, 6 tasks, ploomber build --force), median of {repeats}:"
        )
        print(
            f"  plain ploomber build (NBOPS_TRACKING=off)  {m_off:6.2f} s   runs: {', '.join(f'{x:.2f}' for x in off)}"
        )
        print(
            f"  with the paper trail (embedded MLflow)      {m_on:6.2f} s   runs: {', '.join(f'{x:.2f}' for x in on)}"
        )
        print(f"  ratio on/off                                {m_on / m_off:6.3f}")
        print(
            f"  time inside nbops hooks                     {m_hooks:6.2f} s = {m_hooks / m_on:.1%} of the build (target <= 10%)"
        )


def runs_list(n_runs: int) -> None:
    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory() as tmp:
        project = copy_project(Path(tmp) / "bench")
        uri = f"sqlite:///{project / '.nbops' / 'mlflow.db'}"
        (project / ".nbops").mkdir()
        client = MlflowClient(uri)
        experiment = client.create_experiment(
            "bench", artifact_location=(project / ".nbops" / "artifacts").as_uri()
        )
        started = time.perf_counter()
        for i in range(n_runs):
            run = client.create_run(
                experiment,
                tags={
                    "nbops.kind": "build",
                    "nbops.trigger": "ci",
                    "nbops.status": "FINISHED",
                    "git.commit": f"{i:040x}",
                    "git.dirty": "false",
                    "data.content_hash": f"sha256:{i:064x}",
                },
            )
            client.log_batch(run.info.run_id, metrics=[], params=[])
            client.log_metric(run.info.run_id, "roc_auc", 0.7 + i / 1e5)
            client.set_terminated(run.info.run_id)
        print(f"\nStore with {n_runs:,} builds created in {time.perf_counter() - started:.1f} s.")
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": "",
            "NBOPS_EXPERIMENT": "bench",
            "PLOOMBER_STATS_ENABLED": "false",
        }
        nbops = [timed([str(BIN / "nbops"), "runs", "list"], project, env)[0] for _ in range(3)]
        mlflow_cli = [
            timed(
                [str(BIN / "mlflow"), "runs", "list", "--experiment-id", experiment],
                project,
                {**env, "MLFLOW_TRACKING_URI": uri},
            )[0]
            for _ in range(3)
        ]
        print(
            f"`nbops runs list` over {n_runs:,} builds (20 newest, with metrics), median of 3: {statistics.median(nbops):.2f} s (target < 2 s)"
        )
        print(
            f"`mlflow runs list` on the same experiment (all runs, no metrics), median of 3:  {statistics.median(mlflow_cli):.2f} s"
        )
        print(
            f"  ratio nbops/mlflow: {statistics.median(nbops) / statistics.median(mlflow_cli):.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args()
    capture_overhead(args.repeats, args.rows)
    runs_list(args.runs)


if __name__ == "__main__":
    main()
