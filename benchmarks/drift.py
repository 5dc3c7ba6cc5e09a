"""Benchmark drift scoring (nbops.monitoring.drift) against Evidently's DataDriftPreset on the same data.

Data: 20 columns, 15 numeric (normal, lognormal and integer-valued, two with 2% missing
values) and 5 categorical with 5 to 20 string categories each. The reference has 100,000
rows; the current windows 100k, 1M and 10M rows, in which five columns drift moderately
(num_00 mean +0.3 sd, num_01 spread x1.25, num_07 x1.22, num_11 Poisson 3 -> 3.5, cat_03
mixed 55% with its reversed distribution) and num_02 shifts by 0.03 sd, below both tools'
thresholds. Rows are generated in blocks of 1M with numpy, each block seeded by
(seed, block), and written block by block to Parquet in a temporary folder, so the parent
process never holds a 10M-row window.

Categorical columns are pandas 3's default ``str`` dtype (pyarrow-backed strings, what
``read_csv``/``read_parquet`` give) unless ``--categorical category`` (pandas
Categorical: one byte per value; nbops counts the codes).

What is measured:
1. ``profile()`` on the reference, once, in this process (median of ``--repeats``).
2. ``compare()`` of each window against that profile (stored and re-read as JSON, as in
   production), in a fresh subprocess per window size: the window is read from Parquet,
   one warm-up compare runs on its first 2,000 rows (lazy imports), then the median of
   ``--repeats`` compares. Peak memory: the kernel's peak RSS (VmHWM) is reset after the
   data are loaded (``/proc/self/clear_refs``), so "peak MB" is what compare added on top
   of the loaded window, next to the window's own size (``memory_usage(deep=True)``).
   Targets: 1M rows x 20 columns in at most 2 s and within twice the data's memory.
3. Evidently 0.7 (``Report([DataDriftPreset()])`` with an explicit ``DataDefinition``,
   ``Dataset.from_pandas`` + ``report.run`` timed) on the same Parquet files, measured the
   same way, in its own venv: Evidently 0.7 needs pandas < 3, so it reads strings as
   ``object`` (its data MB is printed too). Skipped above ``--evidently-max-rows``.
   The columns each tool finds drifted are printed side by side with the expected ones.

Setup of the Evidently venv, once (from the repository root):
    python3 -m venv .bench/evidently && .bench/evidently/bin/pip install 'evidently==0.7.*' 'pandas<3' pyarrow

Usage (from the repository root, in the project's venv):
    .venv/bin/python benchmarks/drift.py [--sizes 100000,1000000,10000000] [--repeats 3]
        [--evidently-python .bench/evidently/bin/python] [--evidently-max-rows 1000000]
        [--categorical str|category]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from nbops.data.tables import write_frames

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EVIDENTLY = ROOT / ".bench" / "evidently" / "bin" / "python"
BLOCK = 1_000_000
MB = 1024 * 1024
WARMUP_ROWS = 2000

# -- data ------------------------------------------------------------------------------

NORMAL = [f"num_{i:02d}" for i in range(0, 6)]
LOGNORMAL = [f"num_{i:02d}" for i in range(6, 11)]
INTEGER = [f"num_{i:02d}" for i in range(11, 15)]
NUMERIC = NORMAL + LOGNORMAL + INTEGER
CATEGORY_SIZES = (5, 8, 12, 16, 20)
CATEGORICAL = [f"cat_{j:02d}" for j in range(len(CATEGORY_SIZES))]
#: the columns that drift, by construction (num_02 moves too, by 0.03 sd: below threshold)
EXPECTED_DRIFT = ["num_00", "num_01", "num_07", "num_11", "cat_03"]


def category_specs(seed: int) -> dict[str, tuple[list[str], np.ndarray]]:
    """Labels and reference probabilities per categorical column (fixed for all blocks)."""
    rng = np.random.default_rng([seed, 999])
    specs = {}
    for name, k in zip(CATEGORICAL, CATEGORY_SIZES, strict=True):
        labels = [f"{name}_v{i:02d}" for i in range(k)]
        specs[name] = (labels, rng.dirichlet(np.full(k, 2.0)))
    return specs


def make_block(
    rows: int, seed: int, block: int, *, drifted: bool, categorical: str
) -> pd.DataFrame:
    """``rows`` rows of the reference distribution, or of the drifted window's."""
    rng = np.random.default_rng([seed, int(drifted), block])
    data: dict[str, object] = {}
    for i, name in enumerate(NORMAL):
        loc, scale = float(i), 1.0 + i / 2
        if drifted and name == "num_00":
            loc += 0.3 * scale
        if drifted and name == "num_01":
            scale *= 1.25
        if drifted and name == "num_02":
            loc += 0.03 * scale
        data[name] = rng.normal(loc, scale, rows)
    for i, name in enumerate(LOGNORMAL):
        values = rng.lognormal(i / 4, 0.5 + i / 8, rows)
        data[name] = values * np.exp(0.2) if drifted and name == "num_07" else values
    data["num_11"] = rng.poisson(3.5 if drifted else 3.0, rows)  # counts
    data["num_12"] = rng.integers(18, 91, rows)  # age
    data["num_13"] = rng.binomial(10, 0.3, rows)
    data["num_14"] = rng.integers(1, 6, rows)  # a 1-5 rating
    for name in ("num_04", "num_09"):
        data[name][rng.random(rows) < 0.02] = np.nan
    for name, (labels, p) in category_specs(seed).items():
        if drifted and name == "cat_03":
            p = 0.45 * p + 0.55 * p[::-1]
        codes = rng.choice(len(labels), rows, p=p).astype(np.int8)
        if name == "cat_01":
            codes[rng.random(rows) < 0.02] = -1  # missing
        column = pd.Series(pd.Categorical.from_codes(codes, categories=labels))
        data[name] = column if categorical == "category" else column.astype("str")
    return pd.DataFrame(data)


def write_parquet(path: Path, rows: int, seed: int, *, drifted: bool, categorical: str) -> None:
    """Generate and write block by block: memory stays at one block."""
    write_frames(
        (
            make_block(
                min(BLOCK, rows - start), seed, block, drifted=drifted, categorical=categorical
            )
            for block, start in enumerate(range(0, rows, BLOCK))
        ),
        path,
    )


def roles() -> dict[str, str]:
    return {**dict.fromkeys(NUMERIC, "numeric"), **dict.fromkeys(CATEGORICAL, "categorical")}


# -- memory (Linux: peak RSS can be reset; elsewhere the process-wide peak) ----------------


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# -- nbops, in a subprocess per window ----------------------------------------------------


def nbops_worker(profile_path: str, data_path: str, repeats: int) -> None:
    from nbops.monitoring.drift import Profile, compare

    reference = Profile.from_dict(json.loads(Path(profile_path).read_text()))
    frame = pd.read_parquet(data_path)
    data_bytes = int(frame.memory_usage(deep=True).sum())
    compare(reference, frame.head(WARMUP_ROWS))  # lazy imports out of the measurement
    gc.collect()
    base, exact = rss_bytes(), reset_peak()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        report = compare(reference, frame)
        times.append(time.perf_counter() - started)
    peak = peak_bytes()
    stats = {c.column: [c.method, c.statistic] for c in report.columns}
    print(
        json.dumps(
            {
                "seconds": statistics.median(times),
                "times": times,
                "data_bytes": data_bytes,
                "base_rss": base,
                "peak_rss": peak,
                "extra": peak - base if exact else None,
                "drifted": report.drifted_columns,
                "stats": stats,
                "dtypes": sorted({str(t) for t in frame.dtypes}),
            }
        )
    )


# -- Evidently, in its own venv (pandas < 3) -------------------------------------------------

EVIDENTLY_WORKER = r"""
import gc, json, sys, time
from pathlib import Path
import pandas as pd

import evidently
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0

def run(reference, current, definition):
    report = Report([DataDriftPreset()])
    return report.run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )

ref_path, cur_path, numeric, categorical, repeats = sys.argv[1:6]
definition = DataDefinition(
    numerical_columns=json.loads(numeric), categorical_columns=json.loads(categorical)
)
reference, current = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
data_bytes = int(current.memory_usage(deep=True).sum())
run(reference, current.head(2000), definition)  # warm-up
gc.collect()
base = status("VmRSS")
try:
    Path("/proc/self/clear_refs").write_text("5")
    exact = True
except OSError:
    exact = False
times = []
for _ in range(int(repeats)):
    started = time.perf_counter()
    snapshot = run(reference, current, definition)
    times.append(time.perf_counter() - started)
peak = status("VmHWM")
stats, drifted, counted = {}, [], None
for metric in snapshot.dict()["metrics"]:
    config, value = metric["config"], metric["value"]
    if config["type"].endswith("ValueDrift"):
        method, threshold = config["method"], config["threshold"]
        # p-value tests drift below the threshold, distances at or above it
        hit = value <= threshold if "p_value" in method else value >= threshold
        stats[config["column"]] = [method, value]
        if hit:
            drifted.append(config["column"])
    elif config["type"].endswith("DriftedColumnsCount"):
        counted = value["count"]
times.sort()
print(json.dumps({
    "version": evidently.__version__, "pandas": pd.__version__,
    "seconds": times[len(times) // 2], "times": times,
    "data_bytes": data_bytes, "base_rss": base, "peak_rss": peak,
    "extra": peak - base if exact else None,
    "drifted": drifted, "counted": counted, "stats": stats,
    "dtypes": sorted({str(t) for t in current.dtypes}),
}))
"""


def run_json(cmd: list[str], timeout: float) -> dict:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def evidently_python(path: str | None) -> Path | None:
    candidate = Path(path) if path else DEFAULT_EVIDENTLY
    if candidate.exists():
        return candidate
    print(
        f"Evidently not found at {candidate}: comparing nbops alone. To include it, from the repository root:\n"
        "    python3 -m venv .bench/evidently && .bench/evidently/bin/pip install 'evidently==0.7.*' 'pandas<3' pyarrow\n"
    )
    return None


# -- the benchmark ------------------------------------------------------------------------------


def profile_reference(path: Path, repeats: int, out: Path) -> tuple[float, int]:
    from nbops.monitoring.drift import profile

    frame = pd.read_parquet(path)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        sketch = profile(frame, roles())
        times.append(time.perf_counter() - started)
    out.write_text(json.dumps(sketch.to_dict()))
    return statistics.median(times), int(frame.memory_usage(deep=True).sum())


def mb(n: int | None) -> str:
    return "-" if n is None else f"{n / MB:,.0f}"


def print_table(results: list[dict]) -> None:
    header = (
        f"  {'rows':>11} | {'data MB':>8} | {'nbops s':>8} | {'nbops peak MB':>13} | {'peak/data':>9} |"
        f" {'evidently s':>11} | {'evid. peak MB':>13} | {'evid. data MB':>13} | {'speed ratio':>11}"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for r in results:
        nb, ev = r["nbops"], r.get("evidently")
        ratio = f"{nb['extra'] / nb['data_bytes']:.2f}x" if nb["extra"] is not None else "-"
        ev_s = f"{ev['seconds']:.2f}" if ev else "skipped"
        speed = f"{ev['seconds'] / nb['seconds']:,.0f}x" if ev else "-"
        print(
            f"  {r['rows']:>11,} | {mb(nb['data_bytes']):>8} | {nb['seconds']:>8.3f} | {mb(nb['extra']):>13} | {ratio:>9} |"
            f" {ev_s:>11} | {mb(ev['extra']) if ev else '-':>13} | {mb(ev['data_bytes']) if ev else '-':>13} | {speed:>11}"
        )


def print_agreement(result: dict) -> None:
    nb, ev = result["nbops"], result.get("evidently")
    print(f"\nDrifted columns at {result['rows']:,} rows:")
    print(f"  expected (by construction): {', '.join(EXPECTED_DRIFT)}")
    print(f"  nbops:                      {', '.join(nb['drifted']) or '(none)'}")
    if ev is None:
        print("  evidently:                  (not run)")
        return
    print(f"  evidently:                  {', '.join(ev['drifted']) or '(none)'}")
    agree = sorted(nb["drifted"]) == sorted(ev["drifted"])
    print(
        f"  agree: {'yes' if agree else 'NO'} (Evidently's own DriftedColumnsCount: {ev['counted']:.0f})"
    )
    print(
        f"\n  {'column':8} {'nbops method':>14} {'statistic':>10} | {'evidently method':>30} {'statistic':>10}"
    )
    for column in NUMERIC + CATEGORICAL:
        n_method, n_stat = nb["stats"].get(column, ["-", float("nan")])
        e_method, e_stat = ev["stats"].get(column, ["-", float("nan")])
        mark = " *" if column in EXPECTED_DRIFT else ""
        print(f"  {column:8} {n_method:>14} {n_stat:>10.4f} | {e_method:>30} {e_stat:>10.4f}{mark}")
    print("  (* drifts by construction; num_02 moves by 0.03 sd, below the thresholds)")


def measure_window(args, rows: int, tmp: Path, evidently: Path | None) -> dict:
    """Generate one window, then time nbops' compare and (maybe) Evidently's report on it."""
    data_path = tmp / f"current-{rows}.parquet"
    started = time.perf_counter()
    write_parquet(data_path, rows, args.seed, drifted=True, categorical=args.categorical)
    print(
        f"  window of {rows:,} rows generated in {time.perf_counter() - started:.1f} s", flush=True
    )
    result: dict = {"rows": rows}
    worker = [
        sys.executable,
        __file__,
        "--worker",
        "nbops",
        "--profile-json",
        str(tmp / "profile.json"),
    ]
    worker += ["--data", str(data_path), "--repeats", str(args.repeats)]
    result["nbops"] = run_json(worker, timeout=args.evidently_timeout)
    print(
        f"    nbops compare: {', '.join(f'{t:.3f}' for t in result['nbops']['times'])} s",
        flush=True,
    )
    if evidently and rows <= args.evidently_max_rows:
        script = tmp / "evidently_worker.py"
        script.write_text(EVIDENTLY_WORKER)
        command = [str(evidently), str(script), str(tmp / "reference.parquet"), str(data_path)]
        command += [json.dumps(NUMERIC), json.dumps(CATEGORICAL), str(args.evidently_repeats)]
        result["evidently"] = run_json(command, timeout=args.evidently_timeout)
        times = ", ".join(f"{t:.2f}" for t in result["evidently"]["times"])
        print(f"    evidently report: {times} s", flush=True)
    data_path.unlink()
    return result


def print_summary(args, results: list[dict]) -> None:
    print(
        f"\nCompare one window against the profile (nbops median of {args.repeats}, Evidently of {args.evidently_repeats};"
        " peak MB = peak RSS added on top of the loaded window):"
    )
    print_table(results)
    ev0 = next((r["evidently"] for r in results if r.get("evidently")), None)
    print(f"  nbops data dtypes: {', '.join(results[0]['nbops']['dtypes'])}")
    if ev0:
        print(
            f"  Evidently {ev0['version']} on pandas {ev0['pandas']}, data dtypes: {', '.join(ev0['dtypes'])};"
            " its time includes Dataset.from_pandas for both frames and report.run, not the Parquet read"
        )
    for r in results:
        total = f"  process peak RSS at {r['rows']:,} rows: nbops {mb(r['nbops']['peak_rss'])} MB"
        if r.get("evidently"):
            total += f", evidently {mb(r['evidently']['peak_rss'])} MB"
        print(total)
    for r in results:
        if r["rows"] == 1_000_000:
            nb = r["nbops"]
            ok_time = nb["seconds"] <= 2
            ok_mem = nb["extra"] is not None and nb["extra"] <= 2 * nb["data_bytes"]
            print(
                f"  targets at 1M rows: compare <= 2 s: {'met' if ok_time else 'MISSED'} ({nb['seconds']:.2f} s);"
                f" peak within 2x the data: {'met' if ok_mem else 'MISSED'}"
            )
    print_agreement(results[0])
    for r in results[1:]:
        if r.get("evidently"):
            nb, ev = r["nbops"]["drifted"], r["evidently"]["drifted"]
            print(
                f"  at {r['rows']:,} rows: nbops {', '.join(nb)}; evidently {', '.join(ev)};"
                f" agree: {'yes' if sorted(nb) == sorted(ev) else 'NO'}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="100000,1000000,10000000", help="window rows, comma-separated"
    )
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3, help="nbops timings per size (median)")
    parser.add_argument(
        "--evidently-python",
        help=f"a python with evidently 0.7 (default {DEFAULT_EVIDENTLY.relative_to(ROOT)})",
    )
    parser.add_argument(
        "--evidently-max-rows", type=int, default=1_000_000, help="skip Evidently above this"
    )
    parser.add_argument("--evidently-repeats", type=int, default=1)
    parser.add_argument(
        "--evidently-timeout", type=float, default=3600, help="seconds per subprocess"
    )
    parser.add_argument("--categorical", choices=("str", "category"), default="str")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--profile-json", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "nbops":
        nbops_worker(args.profile_json, args.data, args.repeats)
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    evidently = evidently_python(args.evidently_python)
    print(
        f"Drift: reference {args.reference_rows:,} rows, windows {', '.join(f'{s:,}' for s in sizes)} rows;"
        f" 20 columns ({len(NUMERIC)} numeric, {len(CATEGORICAL)} categorical as {args.categorical!r});"
        f" {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory(prefix="nbops-drift-") as name:
        tmp = Path(name)
        ref_path = tmp / "reference.parquet"
        write_parquet(
            ref_path, args.reference_rows, args.seed, drifted=False, categorical=args.categorical
        )
        seconds, ref_bytes = profile_reference(ref_path, args.repeats, tmp / "profile.json")
        print(
            f"profile() of the reference ({mb(ref_bytes)} MB in memory), once, median of {args.repeats}: {seconds:.3f} s;"
            f" the profile is {(tmp / 'profile.json').stat().st_size / 1024:,.0f} KiB of JSON"
        )
        results = [measure_window(args, rows, tmp, evidently) for rows in sizes]
    print_summary(args, results)
    print(f"  (load average at the end: {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
