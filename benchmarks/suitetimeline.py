"""Where the test suite's minutes go: each xdist worker's timeline, and CPU per test.

A pytest plugin and its report. Loaded into a whole-suite run, the plugin writes one
line per test start and end (wall time, and the CPU seconds of the worker and of the
children it has reaped: builds, servers, ``nbops`` console scripts) and one per
``subprocess.run`` (its command, wall and CPU seconds), a file per worker. The report
prints when each worker started and ended each file (do the two finish together?), the
tests that waited most (wall minus CPU) and used most CPU, and the processes the tests
started, by command. CPU of a server a module fixture starts counts at the test during
which it is stopped (reaped). On a shared machine compare CPU, not wall.

Usage (from the repository root, in the project's venv):
    SUITE_TIMELINE=/tmp/tl PYTHONPATH=benchmarks .venv/bin/pytest -n auto --dist loadfile \\
        -p no:cacheprovider -p suitetimeline
    .venv/bin/python benchmarks/suitetimeline.py /tmp/tl
"""

from __future__ import annotations

import collections
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

_state: dict[str, object] = {"test": "-", "out": None}


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _write(*fields: object) -> None:
    if _state["out"] is None:
        folder = Path(os.environ.get("SUITE_TIMELINE", "suite-timeline"))
        folder.mkdir(parents=True, exist_ok=True)
        name = os.environ.get("PYTEST_XDIST_WORKER", "main")
        _state["out"] = open(folder / f"{name}.tsv", "a", buffering=1)  # noqa: SIM115
    line = "\t".join(str(f).replace("\t", " ").replace("\n", " ") for f in fields)
    _state["out"].write(line + "\n")  # type: ignore[attr-defined]


def _now() -> tuple[str, str]:
    both = _cpu(resource.RUSAGE_SELF) + _cpu(resource.RUSAGE_CHILDREN)
    return f"{time.time():.3f}", f"{both:.2f}"


def pytest_configure(config: object) -> None:
    original = subprocess.run

    def run(args: object, *rest: object, **options: object) -> object:
        wall, cpu = time.time(), _cpu(resource.RUSAGE_CHILDREN)
        try:
            return original(args, *rest, **options)  # type: ignore[arg-type]
        finally:
            command = " ".join(map(str, args)) if isinstance(args, list | tuple) else str(args)
            spent = _cpu(resource.RUSAGE_CHILDREN) - cpu
            _write("process", f"{time.time() - wall:.2f}", f"{spent:.2f}", _state["test"], command)

    subprocess.run = run  # type: ignore[assignment]
    _write("configure", *_now(), "-")


def pytest_runtest_logstart(nodeid: str, location: object) -> None:
    _state["test"] = nodeid
    _write("start", *_now(), nodeid)


def pytest_runtest_logfinish(nodeid: str, location: object) -> None:
    _write("end", *_now(), nodeid)


def pytest_unconfigure(config: object) -> None:
    _write("unconfigure", *_now(), "-")


def report(folder: Path, top: int = 25) -> None:
    """Print the timelines, the tests and the processes (see the module docstring)."""
    tests: list[tuple[float, float, str]] = []
    processes: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0])
    lines = {
        p.stem: [line.rstrip("\n").split("\t") for line in p.open()] for p in folder.glob("gw*.tsv")
    }
    t0 = min(float(f[1]) for rows in lines.values() for f in rows if f[0] == "configure")
    for worker, rows in sorted(lines.items()):
        started: dict[str, tuple[float, float]] = {}
        files: dict[str, list[float]] = {}
        for kind, *fields in rows:
            if kind in ("start", "end"):
                wall, cpu, node = float(fields[0]) - t0, float(fields[1]), fields[2]
                span = files.setdefault(node.split("::")[0], [wall, wall, cpu, cpu])
                span[1], span[3] = wall, cpu
                if kind == "start":
                    started[node] = (wall, cpu)
                elif node in started:
                    w, c = started.pop(node)
                    tests.append((wall - w, cpu - c, node))
            elif kind == "process":
                command = " ".join(fields[3].split()[:2]).replace(
                    str(Path(sys.executable).parent) + "/", ""
                )
                entry = processes[command]
                entry[0] += 1
                entry[1] += float(fields[0])
                entry[2] += float(fields[1])
        ends = [span[1] for span in files.values()]
        print(
            f"{worker}: first test at {min(s[0] for s in files.values()):.0f} s, last ends at {max(ends):.0f} s"
        )
        for name, (a, b, c0, c1) in files.items():
            if b - a >= 10:
                print(f"  {a:6.0f} {b:6.0f} s  {c1 - c0:6.1f} CPU-s  {name}")
    print(f"\nTests by wall minus CPU (waiting, or sharing a core), top {top}:")
    for wall, cpu, node in sorted(tests, key=lambda t: t[1] - t[0])[:top]:
        print(f"  {wall:6.1f} s  {cpu:6.1f} CPU-s  {node}")
    print(f"\nTests by CPU (with the children reaped during them), top {top}:")
    for wall, cpu, node in sorted(tests, key=lambda t: -t[1])[:top]:
        print(f"  {wall:6.1f} s  {cpu:6.1f} CPU-s  {node}")
    print(f"\nProcesses started with subprocess.run, by command, top {top}:")
    for command, (n, wall, cpu) in sorted(processes.items(), key=lambda p: -p[1][2])[:top]:
        print(f"  {cpu:7.1f} CPU-s {wall:7.1f} s {n:4d}x  {command[:100]}")
    print(f"\nAll tests: {sum(t[1] for t in tests):.0f} CPU-s")


if __name__ == "__main__":
    report(Path(sys.argv[1]))
