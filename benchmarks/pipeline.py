"""The reference pipeline against its physical floor: the same notebook code as one
plain Python process.

For each size (default 10k and 1M generated rows) in a temporary copy of the project:

- **floor**: every task's notebook, with Ploomber's injected parameters, as one Python
  script run by one ``python`` process (each notebook's code in a namespace of its own,
  in the pipeline's order; ``display`` prints). No kernels, no papermill, no HTML, no
  run record: the work the notebooks do and nothing else.
- **nbops**: ``ploomber build --force`` with the project's executor (warm kernels,
  background reports) and the paper trail on.
- **papermill**: the same build with ``NBOPS_EXECUTOR=plain`` (Ploomber's own serial
  build: a kernel started per notebook, reports rendered in line), for comparison.

Each runs "cold" (the first build in a fresh copy: creates the tracking store, no
champion to compare with) and "warm" (a second forced build in the same copy: the gate
compares with the champion the cold build registered; the floor, which registers
nothing, reads nbops' registry for that). Prints wall times, the ratio to the
floor, the CPU seconds (user + system) of the whole process tree (every process the
run started, reaped: ``getrusage(RUSAGE_CHILDREN)``), and the peak memory of the whole
process tree (sampled every 0.1 s) and of its largest process. The per-task table gives
seconds and, for nbops, the CPU seconds of each task's kernel process (its start and
imports included; sampled every 0.1 s, so a tenth of a second at most is missed).

Then, in the copy nbops built, the fixed costs of a build (best of 3, wall and CPU
seconds of the process tree):

- **no-op build**: ``ploomber build`` with every task up to date (it rewrites nothing
  and records nothing), Ploomber deciding; and **again**, answered at start-up from
  what the first one kept (nbops.build.noop);
- **start-up**: loading the pipeline (``ploomber status``: the spec read, the DAG
  rendered, every task's status decided) and recording the build (the seconds the warm
  build spent in nbops' hooks, ``NBOPS_TIMING``).

Usage (from the repository root, in the project's venv):
    .venv/bin/python benchmarks/pipeline.py [--rows 10000 1000000] [--skip-plain]
    .venv/bin/python benchmarks/pipeline.py --rows 10000 --fixed-only   # one build, then the fixed costs
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

REPEATS = 3

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def copy_project(dest: Path, rows: int) -> Path:
    import yaml

    dest.mkdir(parents=True, exist_ok=True)
    for name in ("pipeline.yaml", "env.yaml", "notebooks", "schema"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest / name)
    env = yaml.safe_load((dest / "env.yaml").read_text())
    env["data"]["rows"] = rows
    (dest / "env.yaml").write_text(yaml.safe_dump(env, sort_keys=False))
    return dest


def floor_script(project: Path) -> Path:
    """One Python script holding every notebook's code, parameters injected, in order."""
    code = f"""
import os, sys, time
os.chdir({str(project)!r})
sys.argv = ['floor']
from ploomber.spec import DAGSpec
dag = DAGSpec('pipeline.yaml').to_dag()
dag.render(force=True)
import nbformat
from pathlib import Path
from IPython.display import display
for name in dag:
    task = dag[name]
    for product in task.product.to_json_serializable().values():
        Path(product).parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.reads(task.source.nb_str_rendered, as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == 'code']
    code = '\\n'.join(
        line for cell in cells for line in cell.splitlines() if not line.lstrip().startswith(('%', '!'))
    )
    started = time.perf_counter()
    exec(compile(code, task.name, 'exec'), {{'__name__': '__main__', 'display': display}})
    print(f'floor-task {{task.name}} {{time.perf_counter() - started:.2f}}', flush=True)
"""
    path = project / "floor.py"
    path.write_text(code)
    return path


def _is_kernel(proc: psutil.Process, cmdline: str) -> bool:
    """A notebook's kernel: started as ``ipykernel``, or forked by nbops' kernel
    template (same command line as the template, whose child it is)."""
    if "ipykernel" in cmdline:
        return True
    if TEMPLATE not in cmdline:
        return False
    with contextlib.suppress(psutil.Error):
        parent = proc.parent()
        return parent is not None and TEMPLATE in " ".join(parent.cmdline())
    return False


#: How nbops' kernel template process (nbops.build.forks) shows in a command line.
TEMPLATE = "nbops.build.forks"


class Peak:
    """Peak RSS of a process and its descendants, sampled every 0.1 s: of the whole
    tree, and of each process (kernels noted with their start time, and the CPU
    seconds they had used when last seen)."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.tree = 0
        self.peaks: dict[int, int] = {}
        self.kernels: dict[int, float] = {}
        self.cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def largest(self) -> int:
        return max(self.peaks.values(), default=0)

    def kernel_peaks(self) -> list[int]:
        """Peak RSS of each kernel, in the order the kernels started."""
        return [self.peaks[pid] for pid in sorted(self.kernels, key=self.kernels.get)]

    def kernel_cpu(self) -> list[float]:
        """CPU seconds of each kernel, in the order the kernels started."""
        return [self.cpu.get(pid, 0.0) for pid in sorted(self.kernels, key=self.kernels.get)]

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            with contextlib.suppress(psutil.Error):
                for proc in [self.root, *self.root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        rss = proc.memory_info().rss
                        total += rss
                        self.peaks[proc.pid] = max(self.peaks.get(proc.pid, 0), rss)
                        if proc.pid not in self.kernels and _is_kernel(
                            proc, " ".join(proc.cmdline())
                        ):
                            self.kernels[proc.pid] = proc.create_time()
                        if proc.pid in self.kernels:
                            times = proc.cpu_times()
                            self.cpu[proc.pid] = times.user + times.system
            self.tree = max(self.tree, total)
            self._stop.wait(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def sampled(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, Peak, str, float]:
    """Run ``cmd`` to the end, sampling its memory; exit with its output if it fails.
    Also returns the CPU seconds of its whole process tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    peak = Peak(proc.pid)
    out, _ = proc.communicate()
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak.stop()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed in {cwd}:\n{out[-5000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, peak, out, cpu


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple:
    """(wall s, peak tree bytes, largest process bytes, per-task s, tree CPU s,
    per-task kernel CPU s, output)."""
    elapsed, peak, out, cpu = sampled(cmd, cwd, env)
    seconds = task_seconds(out)
    kernels = peak.kernel_cpu()
    # Kernels start in the pipeline's order (one build at a time on 2 cores); a
    # count that does not match (workers side by side) leaves the column empty.
    kernel_cpu = dict(zip(seconds, kernels, strict=True)) if len(kernels) == len(seconds) else {}
    return elapsed, peak.tree, peak.largest, seconds, cpu, kernel_cpu, out


def bench_env() -> dict[str, str]:
    """The environment builds are measured in: no telemetry, no plotting window, the
    embedded store, the pipeline's own executor settings."""
    env = {**os.environ, "PLOOMBER_STATS_ENABLED": "false", "MPLBACKEND": "Agg"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("NBOPS_EXECUTOR", None)
    return env


def task_seconds(output: str) -> dict[str, float]:
    """Per-task seconds: the floor's ``floor-task NAME S`` lines, or Ploomber's build
    report table (``name  Ran?  Elapsed (s)  Percentage``)."""
    found = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "floor-task":
            found[parts[1]] = float(parts[2])
        elif len(parts) == 4 and parts[1] in ("True", "False"):
            with contextlib.suppress(ValueError):
                found[parts[0]] = float(parts[2])
    return found


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """Wall and CPU seconds (user + system, the whole process tree) of one command."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(
            f"{' '.join(cmd)} failed in {cwd}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, result.stdout + result.stderr


def capture_seconds(output: str) -> tuple[float, float | None] | None:
    """The seconds a build spent in nbops' hooks, and the CPU seconds of their thread
    meanwhile (``NBOPS_TIMING``)."""
    found = None
    for line in output.splitlines():
        if line.startswith("nbops: capture took "):
            parts = line.split()
            cpu = float(parts[6]) if len(parts) > 6 and parts[5] == "(CPU" else None
            found = (float(parts[3]), cpu)
    return found


def fixed_costs(
    project: Path, env: dict[str, str], recording: tuple[float, float | None] | None
) -> dict[str, Any]:
    """A no-op build and loading the pipeline in a built copy: best of REPEATS. The
    no-op build twice over: Ploomber deciding (``NBOPS_NOOP_CACHE=off``), and answered
    at start-up from the answer the first one kept (nbops.build.noop)."""
    build = [str(BIN / "ploomber"), "build"]
    decided = [timed(build, project, {**env, "NBOPS_NOOP_CACHE": "off"}) for _ in range(REPEATS)]
    timed(build, project, env)  # Ploomber decides, and the answer is kept
    answered = [timed(build, project, env) for _ in range(REPEATS)]
    if not all("nothing to do" in out for _, _, out in decided + answered):
        sys.exit(f"the no-op build did something in {project}:\n{decided[0][2][-3000:]}")
    status = [timed([str(BIN / "ploomber"), "status"], project, env) for _ in range(REPEATS)]
    return {
        "noop": min(decided)[:2],
        "noop_answered": min(answered)[:2],
        "answered": all(ANSWERED in out for _, _, out in answered),
        "load": min(status)[:2],
        "record": recording,
        "load_average": os.getloadavg(),
    }


#: What a no-op build answered at start-up says (nbops.build.hooks).
ANSWERED = "no file they depend on changed"


def print_fixed(rows: int, fixed: dict[str, Any]) -> None:
    (wall, cpu), (load_wall, load_cpu) = fixed["noop"], fixed["load"]
    load = "/".join(f"{x:.1f}" for x in fixed["load_average"])
    print(f"{rows:>9,} rows no-op build: {wall:.2f} s (CPU {cpu:.2f} s; load {load})", flush=True)
    (wall, cpu), answered = fixed["noop_answered"], fixed["answered"]
    how = "answered at start-up" if answered else "NOT answered: is the start-up hook installed?"
    print(f"{rows:>9,} rows no-op build again: {wall:.2f} s (CPU {cpu:.2f} s; {how})", flush=True)
    record, record_cpu = fixed["record"] or (None, None)
    total = f" = {load_wall + record:.2f} s" if record is not None else ""
    cpu = f" (CPU {record_cpu:.2f} s)" if record_cpu is not None else ""
    print(
        f"{rows:>9,} rows start-up: loading the pipeline {load_wall:.2f} s (CPU {load_cpu:.2f} s)"
        + (f" + recording the build {record:.2f} s{cpu}{total}" if record is not None else ""),
        flush=True,
    )


def measure_fixed(rows: int) -> dict[str, Any]:
    """One forced build, then the fixed costs (``--fixed-only``)."""
    env = {**bench_env(), "NBOPS_TIMING": "1"}
    with tempfile.TemporaryDirectory(prefix="nbops-bench-") as tmp:
        project = copy_project(Path(tmp) / "nbops", rows)
        _, _, out, _ = sampled([str(BIN / "ploomber"), "build", "--force"], project, env)
        return fixed_costs(project, env, capture_seconds(out))


def measure(rows: int, skip_plain: bool) -> dict[str, dict[str, tuple]]:
    env = bench_env()
    build = [str(BIN / "ploomber"), "build", "--force"]
    variants = {
        "nbops": (build, {}),
        "papermill": (build, {"NBOPS_EXECUTOR": "plain"}),
        "floor": (None, {}),
    }
    if skip_plain:
        del variants["papermill"]
    results: dict[str, dict[str, tuple]] = {}
    with tempfile.TemporaryDirectory(prefix="nbops-bench-") as tmp:
        for name, (cmd, extra) in variants.items():
            project = copy_project(Path(tmp) / name, rows)
            if cmd is None:
                cmd = [sys.executable, str(floor_script(project))]
            results[name] = {}
            for phase in ("cold", "warm"):
                if name == "floor" and phase == "warm":
                    # The floor has no hooks, so it never registers a model: warm, it
                    # reads nbops' registry, whose champion makes its gate do the same
                    # comparison (champion scored, paired bootstrap) as nbops' warm build.
                    registry = Path(tmp) / "nbops" / ".nbops" / "mlflow.db"
                    extra = {**extra, "MLFLOW_TRACKING_URI": f"sqlite:///{registry}"}
                if name == "nbops":
                    extra = {**extra, "NBOPS_TIMING": "1"}
                results[name][phase] = run(cmd, project, {**env, **extra})
                seconds, tree, largest, _, cpu, _, out = results[name][phase]
                if name == "nbops" and phase == "warm":
                    fixed = fixed_costs(project, {**env, **extra}, capture_seconds(out))
                print(
                    f"  {rows:>9,} rows  {name:<9} {phase}: {seconds:7.1f} s  cpu {cpu:7.1f} s  "
                    f"peak {tree / 2**20:6.0f} MB (largest process {largest / 2**20:5.0f} MB)",
                    flush=True,
                )
    return {"floor": results.pop("floor"), **results, "fixed": fixed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--skip-plain", action="store_true", help="leave out the papermill run")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--fixed-only",
        action="store_true",
        help="one nbops build, then only the no-op build and start-up figures",
    )
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, python {sys.version.split()[0]}")
    table: dict[int, Any] = {}
    for rows in args.rows:
        if args.fixed_only:
            table[rows] = {"fixed": measure_fixed(rows)}
            print_fixed(rows, table[rows]["fixed"])
            continue
        results = measure(rows, args.skip_plain)
        fixed = results.pop("fixed")
        table[rows] = {**results, "fixed": fixed}
        for phase in ("cold", "warm"):
            floor = results["floor"][phase][0]
            ratios = "  ".join(
                f"{name} {results[name][phase][0] / floor:.2f}x"
                for name in results
                if name != "floor"
            )
            print(f"{rows:>9,} rows {phase}: floor {floor:.1f} s; {ratios}", flush=True)
            floor_cpu = results["floor"][phase][4]
            cpus = "  ".join(
                f"{name} {results[name][phase][4]:.1f} s ({results[name][phase][4] / floor_cpu:.2f}x)"
                for name in results
                if name != "floor"
            )
            print(f"{rows:>9,} rows {phase} cpu: floor {floor_cpu:.1f} s; {cpus}", flush=True)
        tasks = results["floor"]["warm"][3]
        kernelled = [n for n in results if n != "floor"]
        print(
            f"  per task, warm (s): {'task':<14}"
            + "".join(f"{n:>11}" for n in results)
            + "".join(f"{n + ' cpu':>14}" for n in kernelled)
        )
        for task in tasks:
            cells = "".join(
                f"{results[n]['warm'][3].get(task, float('nan')):>11.1f}" for n in results
            )
            cells += "".join(
                f"{results[n]['warm'][5].get(task, float('nan')):>14.1f}" for n in kernelled
            )
            print(f"  {'':<19}{task:<14}{cells}")
        print_fixed(rows, fixed)
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
