"""Ten million rows through the reference pipeline, within a memory budget.

In a temporary copy of the project, ``ploomber build`` runs on N generated rows (default
10 million) with the project's executor and the paper trail on, while every process
of the build is sampled every 0.1 s. Prints the wall time, the peak resident memory of
the whole process tree (the figure held against the budget, default 4 GB = 4e9 bytes),
and per task its seconds and the peak of its kernel. With ``--floor`` the same
notebook code also runs as one plain Python process (see benchmarks/pipeline.py) for
comparison: its peak is what the notebooks' own work needs, without kernels or
Ploomber.

Usage (from the repository root, in the project's venv):
    .venv/bin/python benchmarks/scale.py [--rows 10000000] [--budget-gb 4] [--floor]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import BIN, bench_env, copy_project, floor_script, sampled, task_seconds  # noqa: E402

GB = 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--budget-gb", type=float, default=4.0)
    parser.add_argument("--floor", action="store_true", help="also run the plain-Python floor")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, memory: {psutil.virtual_memory().total / GB:.1f} GB")
    with tempfile.TemporaryDirectory(prefix="nbops-scale-") as tmp:
        project = copy_project(Path(tmp) / "nbops", args.rows)
        seconds, memory, out, _ = sampled([str(BIN / "ploomber"), "build"], project, bench_env())
        tasks = task_seconds(out)
        print(
            f"{args.rows:,} rows, nbops: {seconds:.0f} s, peak {memory.tree / GB:.2f} GB "
            f"(budget {args.budget_gb:.1f} GB: {'within' if memory.tree <= args.budget_gb * GB else 'OVER'}); "
            f"build process {memory.peaks[memory.root.pid] / GB:.2f} GB"
        )
        kernels = memory.kernel_peaks()
        print(f"  {'task':<14}{'seconds':>9}{'kernel peak (GB)':>18}")
        for i, (task, task_s) in enumerate(tasks.items()):
            peak = f"{kernels[i] / GB:.2f}" if i < len(kernels) else "-"
            print(f"  {task:<14}{task_s:>9.1f}{peak:>18}")
        if args.floor:
            floor = copy_project(Path(tmp) / "floor", args.rows)
            seconds, memory, _, _ = sampled(
                [sys.executable, str(floor_script(floor))], floor, bench_env()
            )
            print(f"{args.rows:,} rows, floor: {seconds:.0f} s, peak {memory.tree / GB:.2f} GB")


if __name__ == "__main__":
    main()
