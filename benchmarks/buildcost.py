"""Where a small build's CPU goes, process by process.

Builds the reference pipeline in a fresh temporary copy of the project with the test
suite's settings (``FAST_ENV`` in tests/conftest.py: 1,500 rows, a small boosting
model), or the project's own env.yaml with ``--project-env``, and samples the build's
process tree every 20 ms (``/proc``): the CPU seconds (user + system) of the
``ploomber`` process (loading the pipeline, papermill's bookkeeping, the HTML reports,
recording the build), of the kernel template (:mod:`nbops.build.forks`: the imports of
every notebook of the build, once) and of each forked kernel (its notebook's own work).
A process is counted up to its last sample, so 20 ms at most is missed per process;
the total is the whole tree's, reaped (``getrusage(RUSAGE_CHILDREN)``).

With ``--after monitor,gate``, each build is followed by the commands users run every
day on a built project, sampled the same way: ``nbops monitor --data FILE`` on a
generated batch of 600 rows with drift (its own process, the monitoring build's
``ploomber``, its template and forked kernels, the publishing child) and ``ploomber task
gate --force`` (one task: its kernel, and a template where there is one). Each process
is printed with its CPU seconds, in start order.

The machine is shared: the load average is printed with every build, and each build
runs ``--repeat`` times (default 2). Compare two versions of nbops in turn, in the same
hour, with ``--src`` (a checkout's ``src`` folder, put first on ``PYTHONPATH``).

Usage (from the repository root, in the project's venv):
    .venv/bin/python benchmarks/buildcost.py [--repeat 2] [--src PATH] [--project-env]
        [--after monitor,gate]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _tree(root_pid: int) -> dict[int, tuple[int, float, str]]:
    """pid -> (parent pid, CPU seconds so far, command line) for ``root_pid`` and its
    descendants."""
    procs: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        procs[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK)
    family, grew = {root_pid}, True
    while grew:
        grew = False
        for pid, (ppid, _) in procs.items():
            if ppid in family and pid not in family:
                family.add(pid)
                grew = True
    found = {}
    for pid in family & procs.keys():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            command = "?"
        found[pid] = (procs[pid][0], procs[pid][1], command)
    return found


def build_once(folder: Path, env: dict[str, str]) -> dict[str, object]:
    """One ``ploomber build`` in ``folder``, sampled; the CPU per process."""
    return run_sampled([str(Path(sys.executable).parent / "ploomber"), "build"], folder, env)


#: Commands run on the built project with ``--after`` (argv after the venv's bin folder).
AFTER = {
    "monitor": ["nbops", "monitor", "--data", "batch.parquet"],
    "gate": ["ploomber", "task", "gate", "--force"],
}


def run_sampled(
    argv: list[str], folder: Path, env: dict[str, str], *, codes: tuple[int, ...] = (0,)
) -> dict[str, object]:
    """``argv`` run in ``folder``, its process tree sampled; the CPU per process."""
    before = os.times()
    started = time.monotonic()
    process = subprocess.Popen(
        argv, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    seen: dict[int, list] = {}  # pid -> [ppid, cpu, command, first seen]
    while process.poll() is None:
        for pid, (ppid, cpu, command) in _tree(process.pid).items():
            entry = seen.setdefault(pid, [ppid, cpu, command, time.monotonic() - started])
            entry[1] = max(entry[1], cpu)
            if command.strip() and command != "?":  # not a zombie's (empty)
                entry[2] = command  # a child seen before its exec showed its parent's
        time.sleep(0.02)
    output = process.stdout.read().decode(errors="replace") if process.stdout else ""
    after = os.times()
    if process.returncode not in codes:
        raise SystemExit(f"{argv[1:]} failed ({process.returncode}):\n{output[-4000:]}")
    template = next(
        (pid for pid, e in seen.items() if e[0] == process.pid and "nbops.build.forks" in e[2]),
        None,
    )
    kernels = sorted(
        (e[3], e[1]) for pid, e in seen.items() if template is not None and e[0] == template
    )
    return {
        "wall": time.monotonic() - started,
        "total": after.children_user
        + after.children_system
        - before.children_user
        - before.children_system,
        "ploomber": seen.get(process.pid, [0, 0.0])[1],
        "template": seen[template][1] if template is not None else 0.0,
        "kernels": [cpu for _, cpu in kernels],
        "processes": [(_role(e[2]), e[1]) for _, e in sorted(seen.items(), key=lambda i: i[1][3])],
    }


def _role(command: str) -> str:
    """A short name for a sampled process, from its command line."""
    for word, role in (
        ("nbops.build.forks", "fork"),  # the template or a child of it
        ("ipykernel_launcher", "kernel"),
        ("bin/nbops", "nbops"),
        ("bin/ploomber", "ploomber"),
    ):
        if word in command:
            return role
    return "other"


def after_build(folder: Path, env: dict[str, str], names: list[str]) -> None:
    """The ``--after`` commands on the built project in ``folder``, each printed."""
    from nbops.data.datasets import make_churn

    make_churn(600, seed=11, drift=0.5).to_parquet(folder / "batch.parquet")
    for name in names:
        bin_dir = Path(sys.executable).parent
        argv = [str(bin_dir / AFTER[name][0]), *AFTER[name][1:]]
        cost = run_sampled(argv, folder, env, codes=(0, 1))  # monitor: 1 is a breach
        processes = cost["processes"]
        print(
            f"  {name:8} wall {cost['wall']:5.1f}  total {cost['total']:5.2f}  "
            + " ".join(f"{role} {cpu:.2f}" for role, cpu in processes if cpu >= 0.01)
            + f"  load {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--src", type=Path, help="a checkout's src folder to build with")
    parser.add_argument(
        "--project-env", action="store_true", help="the project's env.yaml, not the suite's"
    )
    parser.add_argument(
        "--after",
        default="",
        help=f"commands to run on each built project, of {','.join(AFTER)} (comma-separated)",
    )
    args = parser.parse_args()
    after = [name for name in args.after.split(",") if name]
    if set(after) - AFTER.keys():
        parser.error(f"--after takes {', '.join(AFTER)}")

    sys.path.insert(0, str(ROOT))
    from tests.conftest import FAST_ENV, PROJECT_FILES, build_env, merge_settings

    env = build_env(
        PLOOMBER_VERSION_CHECK_DISABLED="true",
        MLFLOW_DISABLE_TELEMETRY="true",
        MPLBACKEND="Agg",
        OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
        OPENBLAS_NUM_THREADS=os.environ.get("OPENBLAS_NUM_THREADS", "1"),
    )
    if args.src:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(args.src.resolve()), env.get("PYTHONPATH")) if p
        )
    print(
        f"{'wall':>6} {'total':>6} {'ploomber':>8} {'template':>8} {'kernels':>7}  "
        "each kernel (in start order)  load average"
    )
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="nbops-buildcost-") as tmp:
            folder = Path(tmp) / "project"
            folder.mkdir()
            for name in PROJECT_FILES:
                source = ROOT / name
                if source.is_dir():
                    shutil.copytree(source, folder / name)
                elif source.exists():
                    shutil.copy2(source, folder / name)
            if not args.project_env:
                import yaml

                settings = yaml.safe_load((folder / "env.yaml").read_text())
                merge_settings(settings, FAST_ENV)
                (folder / "env.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
            cost = build_once(folder, env)
            kernels = cost["kernels"]
            print(
                f"{cost['wall']:6.1f} {cost['total']:6.1f} {cost['ploomber']:8.2f} "
                f"{cost['template']:8.2f} {sum(kernels):7.2f}  "
                f"{' '.join(f'{k:.2f}' for k in kernels)}  "
                f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}",
                flush=True,
            )
            if after:
                after_build(folder, env, after)


if __name__ == "__main__":
    main()
