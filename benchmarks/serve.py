"""`nbops serve` against `mlflow models serve` on the same model, same machine, same wrk.

Both servers serve the registry's champion of a built project (one worker each);
`nbops serve` validates every request and logs every prediction, mlflow does neither.
wrk (Debian's package; one thread, so the server keeps a core) drives each with 1, 8
and 64 connections and 1-row and 100-row bodies; the script prints requests/s, p50 and
p99, rows/s and the ratios (``--no-mlflow``: nbops only, for a quicker before/after).

On a shared machine wall-clock rates depend on the neighbours, so each nbops cell also
prints the CPU seconds the server used (user + system of its whole process tree, every
thread and ``--workers`` process, from /proc) and the rows it served per CPU second, the
CPU seconds of the client (wrk: on a 2-core machine it competes with the server), and
the load average before and after.

``--against SRC`` compares two versions of nbops on one busy machine: a second
``nbops serve`` importing nbops from SRC (e.g. ``git archive HEAD~3 src | tar -x -C
/tmp/before``) runs beside this one, and both are driven at the same time, each by its
own wrk with the same bodies and connections, so the neighbours' load falls on both
alike; each cell prints both servers' rates and CPU (``--workers`` applies to this one,
``--against-workers`` to the other).

Usage (from a project that has a champion, e.g. after `make build`):
    .venv/bin/python benchmarks/serve.py [--duration 10] [--project .]
    .venv/bin/python benchmarks/serve.py --against /tmp/before/src --connections 1,8
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pandas as pd

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"{url} did not come up")


def wrk(url: str, body: str, connections: int, duration: int, tmp: Path) -> dict[str, float]:
    own = f"{abs(hash(body))}-{threading.get_ident()}"  # --against runs two at once
    script = tmp / f"post-{own}.lua"
    payload = tmp / f"body-{own}.json"
    payload.write_text(body)
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f'local f = io.open("{payload}", "r")\nwrk.body = f:read("*a")\nf:close()\n'
    )
    out = subprocess.run(
        [
            "wrk",
            "-t",
            "1",
            "-c",
            str(connections),
            "-d",
            f"{duration}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
    ).stdout

    def ms(label: str) -> float:
        match = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50": ms("50"),
        "p99": ms("99"),
        "errors": int(errors.group(1)) if errors else 0,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its descendants (live ones read from
    /proc, reaped ones counted in their parent's), e.g. uvicorn's worker processes."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    total = sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            total += sum(cpu_seconds(int(child)) for child in task.read_text().split())
    return total


def client_seconds() -> float:
    """CPU seconds of the reaped children so far (wrk: the servers run until the end)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _model_name(root: Path) -> str:
    import yaml

    env = yaml.safe_load((root / "env.yaml").read_text()) or {}
    return (env.get("release") or {}).get("model_name") or "churn"


def _start(root: Path, env: dict[str, str], port: int, workers: int) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "nbops"), "serve", "--port", str(port), "--workers", str(workers)],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def compare(args: argparse.Namespace) -> None:
    """``--against``: this nbops and another, served and driven at the same time."""
    root = Path(args.project).resolve()
    target = json.loads((root / "products" / "data" / "features.json").read_text())["target"]
    test = pd.read_parquet(root / "products" / "data" / "test.parquet").drop(
        columns=[target["name"]]
    )
    records = json.loads(test.head(100).to_json(orient="records", date_format="iso"))
    bodies = {n: json.dumps({"records": records[:n]}) for n in (1, 100)}
    base = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PLOOMBER_STATS_ENABLED": "false",
    }
    base.pop("MLFLOW_TRACKING_URI", None)
    against = str(Path(args.against).resolve())
    variants = {
        "this": (base.get("PYTHONPATH"), args.workers),
        "against": (against, args.against_workers),
    }
    levels = [int(c) for c in args.connections.split(",")]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        servers, urls = {}, {}
        for name, (path, workers) in variants.items():
            env = {k: v for k, v in base.items() if k != "PYTHONPATH"}
            env |= {"NBOPS_PREDICTION_LOG": f"sqlite:///{tmp / name}.db"}
            if path:
                env["PYTHONPATH"] = path
            port = free_port()
            servers[name] = _start(root, env, port, workers)
            urls[name] = f"http://127.0.0.1:{port}"
        try:
            for url in urls.values():
                wait(f"{url}/ready")
            print(
                f"nbops serve side by side, validation + prediction log on, wrk {args.duration} s "
                f"per cell, both driven at once; {os.cpu_count()} cores\n"
                f"  this:    {variants['this'][0] or 'the installed nbops'}, {args.workers} worker(s)\n"
                f"  against: {against}, {args.against_workers} worker(s)"
            )
            print(
                f"{'rows':>4} {'conn':>4} {'load':>5} | {'':>7} {'req/s':>7} {'rows/s':>8} "
                f"{'p50 ms':>7} {'p99 ms':>7} {'cpu s':>6} {'rows/cpu-s':>10}"
            )
            for rows in (1, 100):
                for connections in levels:
                    for _ in range(args.rounds):
                        cells = _side_by_side(urls, servers, bodies[rows], connections, args, tmp)
                        load = os.getloadavg()[0]
                        for name, cell in cells.items():
                            served = cell["rps"] * rows * args.duration
                            print(
                                f"{rows:>4} {connections:>4} {load:>5.1f} | {name:>7} "
                                f"{cell['rps']:>7.0f} {cell['rps'] * rows:>8.0f} "
                                f"{cell['p50']:>7.2f} {cell['p99']:>7.2f} {cell['cpu']:>6.1f} "
                                f"{served / cell['cpu'] if cell['cpu'] else float('nan'):>10.0f}"
                                + (f"  (errors: {cell['errors']})" if cell["errors"] else ""),
                                flush=True,
                            )
        finally:
            for server in servers.values():
                server.terminate()
                server.wait(timeout=30)


def _side_by_side(
    urls: dict[str, str],
    servers: dict[str, subprocess.Popen],
    body: str,
    connections: int,
    args: argparse.Namespace,
    tmp: Path,
) -> dict[str, dict[str, float]]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(urls)) as pool:
        for name in urls:  # warm up both, at once too
            pool.submit(wrk, f"{urls[name]}/predict", body, connections, 2, tmp)
    cpu = {name: cpu_seconds(server.pid) for name, server in servers.items()}
    with ThreadPoolExecutor(len(urls)) as pool:
        futures = {
            name: pool.submit(wrk, f"{url}/predict", body, connections, args.duration, tmp)
            for name, url in urls.items()
        }
    cells = {name: future.result() for name, future in futures.items()}
    for name, server in servers.items():
        cells[name]["cpu"] = cpu_seconds(server.pid) - cpu[name]
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--project", default=".")
    parser.add_argument("--no-mlflow", action="store_true", help="measure nbops serve only")
    parser.add_argument("--connections", default="1,8,64", help="comma-separated wrk -c values")
    parser.add_argument(
        "--workers", type=int, default=1, help="nbops serve --workers (mlflow keeps 1)"
    )
    parser.add_argument("--against", help="src folder of another nbops, served side by side")
    parser.add_argument("--against-workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2, help="with --against: cells per level")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    if args.against:
        compare(args)
        return
    root = Path(args.project).resolve()
    target = json.loads((root / "products" / "data" / "features.json").read_text())["target"]
    test = pd.read_parquet(root / "products" / "data" / "test.parquet").drop(
        columns=[target["name"]]
    )
    records = json.loads(test.head(100).to_json(orient="records", date_format="iso"))
    model_name = _model_name(root)
    bodies = {
        "nbops": {1: json.dumps({"records": records[:1]}), 100: json.dumps({"records": records})},
        "mlflow": {
            1: json.dumps({"dataframe_records": records[:1]}),
            100: json.dumps({"dataframe_records": records}),
        },
    }
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PLOOMBER_STATS_ENABLED": "false",
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / '.nbops' / 'mlflow.db'}",
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ports = {"nbops": free_port(), "mlflow": free_port()}
        nbops_env = {k: v for k, v in env.items() if k != "MLFLOW_TRACKING_URI"} | {
            "NBOPS_PREDICTION_LOG": f"sqlite:///{tmp / 'log.db'}"
        }
        servers = {
            "nbops": subprocess.Popen(
                [
                    str(BIN / "nbops"),
                    "serve",
                    "--port",
                    str(ports["nbops"]),
                    "--workers",
                    str(args.workers),
                ],
                cwd=root,
                env=nbops_env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        }
        if not args.no_mlflow:
            servers["mlflow"] = subprocess.Popen(
                [
                    str(BIN / "mlflow"),
                    "models",
                    "serve",
                    "-m",
                    f"models:/{model_name}@champion",
                    "--env-manager",
                    "local",
                    "--port",
                    str(ports["mlflow"]),
                    "--workers",
                    "1",
                ],
                cwd=root,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        try:
            wait(f"http://127.0.0.1:{ports['nbops']}/ready")
            if not args.no_mlflow:
                wait(f"http://127.0.0.1:{ports['mlflow']}/ping")
            urls = {
                "nbops": f"http://127.0.0.1:{ports['nbops']}/predict",
                "mlflow": f"http://127.0.0.1:{ports['mlflow']}/invocations",
            }
            results = {}
            names = ("nbops",) if args.no_mlflow else ("nbops", "mlflow")
            levels = [int(c) for c in args.connections.split(",")]
            empty = {"rps": 0.0, "p50": float("nan"), "p99": float("nan"), "errors": 0}
            load_before = os.getloadavg()
            for rows in (1, 100):
                for connections in levels:
                    for name in names:
                        wrk(urls[name], bodies[name][rows], connections, 2, tmp)  # warm up
                        cpu, client = cpu_seconds(servers[name].pid), client_seconds()
                        results[name, rows, connections] = wrk(
                            urls[name], bodies[name][rows], connections, args.duration, tmp
                        )
                        results[name, rows, connections]["cpu"] = (
                            cpu_seconds(servers[name].pid) - cpu
                        )
                        results[name, rows, connections]["client"] = client_seconds() - client
            load_after = os.getloadavg()
            print(
                f"nbops serve (validation + prediction log on, {args.workers} worker{'s' if args.workers > 1 else ''}) vs mlflow models serve (1 worker), wrk {args.duration} s per cell; {os.cpu_count()} cores"
            )
            print(
                "load average (1, 5, 15 min) before "
                + ", ".join(f"{v:.2f}" for v in load_before)
                + "; after "
                + ", ".join(f"{v:.2f}" for v in load_after)
            )
            print(
                f"{'rows':>4} {'conn':>4} | {'nbops req/s':>11} {'rows/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'cpu s':>6} {'rows/cpu-s':>10} {'wrk cpu s':>9} | {'mlflow req/s':>12} {'p50 ms':>7} {'p99 ms':>7} | {'throughput x':>12}"
            )
            for rows in (1, 100):
                for connections in levels:
                    a = results["nbops", rows, connections]
                    b = results.get(("mlflow", rows, connections), empty)
                    ratio = a["rps"] / b["rps"] if b["rps"] else float("inf")
                    served = a["rps"] * rows * args.duration
                    per_cpu = served / a["cpu"] if a["cpu"] else float("nan")
                    print(
                        f"{rows:>4} {connections:>4} | {a['rps']:>11.0f} {a['rps'] * rows:>8.0f} {a['p50']:>7.2f} {a['p99']:>7.2f} {a['cpu']:>6.1f} {per_cpu:>10.0f} {a['client']:>9.1f} | {b['rps']:>12.0f} {b['p50']:>7.2f} {b['p99']:>7.2f} | {ratio:>11.1f}x"
                        + (
                            f"  (errors: nbops {a['errors']}, mlflow {b['errors']})"
                            if a["errors"] or b["errors"]
                            else ""
                        )
                    )
            best = max(results["nbops", 100, c]["rps"] for c in levels) * 100
            per_cpu = max(
                results["nbops", 100, c]["rps"]
                * 100
                * args.duration
                / results["nbops", 100, c]["cpu"]
                for c in levels
                if results["nbops", 100, c]["cpu"]
            )
            print(
                f"100-row requests through nbops serve: {best:,.0f} rows/s at best; "
                f"{per_cpu:,.0f} rows per server CPU second at best"
            )
        finally:
            for server in servers.values():
                server.terminate()
                server.wait(timeout=30)


if __name__ == "__main__":
    main()
