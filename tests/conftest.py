"""Shared fixtures: an isolated environment for every test, and real project copies.

Pipeline tests copy the repository's pipeline (pipeline.yaml, env.yaml, notebooks/,
schema/) into a temporary folder and run the real ``ploomber build`` there, with real
kernels, so the repository's own products/ are never touched.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nbops.state import file_lock

ROOT = Path(__file__).resolve().parents[1]
#: Where CI collects the test build's notebooks and reports (see .github/workflows/ci.yml).
ARTIFACTS = os.environ.get("NBOPS_TEST_ARTIFACTS")
BIN = Path(sys.executable).parent
#: Read once, before the autouse fixture below removes CI from every test's environment:
#: in CI a missing service (PostgreSQL) fails its tests instead of skipping them.
IN_CI = bool(os.environ.get("CI"))
#: Where Debian's postgresql package installs its versions (overridable to test the above).
POSTGRES_ROOT = Path(os.environ.get("NBOPS_TEST_POSTGRES_ROOT", "/usr/lib/postgresql"))
PROJECT_FILES = ("pipeline.yaml", "pipeline.monitor.yaml", "env.yaml", "notebooks", "schema")

# One thread per math library in everything the suite starts (builds, kernels, servers):
# ``make test`` runs a worker per core, so more threads only wait for a core, and
# waiting OpenMP and OpenBLAS threads spin (a reference build: 20 -> 15 CPU-s). Set
# before any library starts its threads; a developer's own setting wins.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

#: Small, fast settings for test builds (merged into a copy of env.yaml).
FAST_ENV = {
    "data": {"rows": 1500},
    "train": {"hyperparams": {"linear": {}, "hgb": {"max_iter": 30, "early_stopping": False}}},
}


#: The files that take longest, with their seconds in a whole-suite run (per-test times
#: of `--junitxml`, setup included, 2 Dec 2026 at load 5-12; only their order matters):
#: handed out longest first (the longest-processing-time rule), since ``--dist
#: loadfile`` keeps a file on one worker and a long file started late keeps one worker
#: busy while the other sits idle; the many short files then even out the end. The
#: first two differ in kind: the first (test_app) needs the session's ``built_project``,
#: which its worker builds first; the second needs none, so the other worker works on
#: its own meanwhile. Then the rest by folder (below).
_LONG_FILES = {
    "serving/test_app.py": 294,
    "pipeline/test_tracking.py": 266,
    "pipeline/test_sklearn_datasets.py": 183,
    "pipeline/test_hostile_data.py": 183,
    "pipeline/test_monitoring.py": 180,
    "pipeline/test_release.py": 169,
    "pipeline/test_adopt.py": 168,
    "commands/test_export.py": 155,
    "pipeline/test_bad_input.py": 144,
    "pipeline/test_reports_browser.py": 109,
    "pipeline/test_noop_build.py": 95,
    "pipeline/test_side_by_side_builds.py": 88,
    "pipeline/test_reference_build.py": 80,
    "serving/test_fuzz.py": 43,
    "pipeline/test_lab.py": 43,
    "commands/test_score.py": 41,
    "tracking/test_registry.py": 39,
    "tracking/test_store_open.py": 31,
    "pipeline/test_reproduce.py": 24,
    "tests/test_packaging.py": 23,
    "tracking/test_build_records.py": 23,
    "serving/test_container.py": 22,
    "pipeline/test_user_data.py": 17,
}
#: Test folders in the order their files are handed out: the ones whose files build
#: projects or start services first, the many small unit-test files last.
_SLOW_FOLDERS = ("pipeline", "serving", "commands", "tracking")


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist hands out the files with the most tests first unless told to keep
    # the collection order; a pipeline file has few tests and most of the minutes, so it
    # would start last. The order below is the one wanted.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # ``make test`` hands whole files to two workers in collection order: long files
    # first, and the small ones fill in the end. (The sort is stable: order within a
    # file stays as written.)
    def rank(item: pytest.Item) -> tuple[int, int]:
        path = Path(item.path)
        name = f"{path.parent.name}/{path.name}"
        if name in _LONG_FILES:
            return 0, -_LONG_FILES[name]
        folder = path.parent.name
        return 1, _SLOW_FOLDERS.index(folder) if folder in _SLOW_FOLDERS else len(_SLOW_FOLDERS)

    items.sort(key=rank)


@pytest.fixture(autouse=True)
def _isolated_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Nothing a test starts may phone home, and nothing leaks in from the developer's shell.
    monkeypatch.setenv("PLOOMBER_STATS_ENABLED", "false")
    monkeypatch.setenv("PLOOMBER_VERSION_CHECK_DISABLED", "true")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    for name in ("CI", "GITHUB_ACTIONS"):
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith(("NBOPS_", "MLFLOW_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")  # as the environment's hook sets it


@pytest.fixture(scope="module")
def module_env() -> Iterator[None]:
    """The autouse isolation is per test; module-scoped stores need it too."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith(("NBOPS_", "MLFLOW_")):
                mp.delenv(name)
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        yield


@dataclass
class Project:
    """A copy of the reference project in a temporary folder."""

    root: Path

    @property
    def products(self) -> Path:
        return self.root / "products"

    def set_env(self, **sections: object) -> None:
        """Merge ``sections`` into this project's env.yaml (nested dicts merge)."""
        import yaml

        path = self.root / "env.yaml"
        env = yaml.safe_load(path.read_text())
        merge_settings(env, sections)
        path.write_text(yaml.safe_dump(env, sort_keys=False))

    def build(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run ``ploomber build`` here; fail the test with its output if it fails and ``check``."""
        result = subprocess.run(
            [str(BIN / "ploomber"), "build", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=build_env(),
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"ploomber build failed ({result.returncode}):\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
            )
        return result

    def nbops(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The ``nbops`` console script here, in a process of its own."""
        result = subprocess.run(
            [str(BIN / "nbops"), *args], cwd=self.root, capture_output=True, text=True, timeout=300
        )
        if check and result.returncode != 0:
            pytest.fail(f"nbops {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``nbops ARGS`` here, in this process: see :func:`run_cli`."""
        return run_cli(self.root, *args, check=check)


def run_cli(
    cwd: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``nbops ARGS`` run in ``cwd`` in this process (click's runner on ``nbops.cli.main``,
    the console script's entry point), answered as :meth:`Project.nbops` answers. For
    tests of what a command does: a console script costs a Python start and, for most
    commands, an MLflow import (2-4 CPU-s each). Keep the subprocess where the process is
    the point (exit codes a scheduler reads, signals, servers). An exception the command
    lets out appears in stderr as a traceback, as the console script would print it."""
    import traceback

    from click.testing import CliRunner

    from nbops.cli import main

    here = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(main, list(args), env=env, prog_name="nbops")
    finally:
        os.chdir(here)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    done = subprocess.CompletedProcess(["nbops", *args], result.exit_code, result.stdout, stderr)
    if check and done.returncode != 0:
        pytest.fail(f"nbops {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def make_recipe(target: str, *, drop_env: tuple[str, ...] = ()) -> list[str]:
    """The commands ``make TARGET`` would run for this venv (make's dry run, the install
    step taken as done). Without make's own variables: under ``make test`` this would be
    a sub-make printing "Entering directory" lines."""
    venv = BIN.parent
    drop = {"MAKEFLAGS", "MAKELEVEL", "MFLAGS", *drop_env}
    result = subprocess.run(
        [
            "make",
            "-n",
            "--no-print-directory",
            "-o",
            f"{venv}/.nbops-installed",
            f"VENV={venv}",
            target,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k not in drop},
    )
    return [line for line in result.stdout.splitlines() if line.strip()]


def build_env(**extra: str) -> dict[str, str]:
    """The environment of a build a test starts: the test's own, minus the markers of
    the CI that runs the suite (CI=true would record every test build as trigger 'ci')."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"CI", "GITHUB_ACTIONS", "NBOPS_TRIGGER", "NBOPS_ACTOR"}
    }
    return {**env, "PLOOMBER_STATS_ENABLED": "false", **extra}


#: Lines a user reads as something gone wrong, in the output of a command that went
#: well: an interrupt (jupyter_client's, at a kernel's shutdown), a kernel's own log, a
#: library's warning or deprecation, a traceback, the kernel template's doubts.
_ALARMS = re.compile(
    r"KeyboardInterrupt|\[IPKernelApp\]|Debugger warning|\b[A-Z]\w*Warning\b|warnings\.warn"
    r"|Traceback|asked whether it runs in IPython"
)


#: Of those, the ones a build's kernels print, whatever the notebooks' code.
_KERNEL_ALARMS = re.compile(
    r"KeyboardInterrupt|\[IPKernelApp\]|Debugger warning|IProgress not found"
    r"|asked whether it runs in IPython"
)


def alarms(*outputs: str, kernels_only: bool = False) -> list[str]:
    """The lines of ``outputs`` (a command's stdout and stderr) that a user would take
    for a problem (progress bars' carriage returns split lines too); ``kernels_only``:
    only those the kernels print (a test's notebooks may deserve Ploomber's warnings
    about their own code)."""
    pattern = _KERNEL_ALARMS if kernels_only else _ALARMS
    lines = (line for out in outputs for line in re.split(r"[\r\n]+", out))
    return [line for line in lines if pattern.search(line)]


def merge_settings(base: dict, extra: dict) -> None:
    """Merge ``extra`` into ``base`` as env.yaml sections merge (nested dicts merge)."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge_settings(base[key], value)
        else:
            base[key] = value


def _copy_project(dest: Path) -> Project:
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        else:
            shutil.copy2(src, dest / name)
    project = Project(dest)
    project.set_env(**FAST_ENV)
    return project


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Project]:
    """Factory: a fresh copy of the reference project with fast settings."""
    counter = iter(range(1000))

    def make(**env: object) -> Project:
        project = _copy_project(tmp_path / f"project{next(counter)}")
        if env:
            project.set_env(**env)
        return project

    return make


@pytest.fixture(scope="session")
def built_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """The reference project built once per session with fast settings (read-only for
    tests). Under xdist the workers share one build: the first to get here builds it
    in the run's common folder, and each worker, the builder too, works on its own
    copy with its own store (tests that promote or monitor there never meet)."""
    own = tmp_path_factory.mktemp("built") / "project"
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        project = _build_reference(own)
    else:
        common = tmp_path_factory.getbasetemp().parent  # this run's, shared by its workers
        with file_lock(common / "reference-build"):  # reference-build.lock
            pristine, built = common / "reference-build" / "project", common / "reference-built"
            if not built.exists():
                shutil.rmtree(pristine, ignore_errors=True)  # a failed worker's partial build
                _build_reference(pristine)
                built.touch()
        project = copy_built_with_store(Project(pristine), own)
    yield project
    if ARTIFACTS:
        shutil.copytree(
            project.products,
            Path(ARTIFACTS) / "reference-build",
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("*.parquet", "*.joblib", ".*.metadata"),
        )


def _build_reference(root: Path) -> Project:
    project = _copy_project(root)
    old = os.environ.get("PLOOMBER_STATS_ENABLED")
    os.environ["PLOOMBER_STATS_ENABLED"] = "false"
    try:
        project.build()
    finally:
        if old is None:
            os.environ.pop("PLOOMBER_STATS_ENABLED", None)
    return project


def copy_built_project(source: Project, dest: Path) -> Project:
    """A copy of a built project at ``dest``, every product up to date (a build there
    skips every task), with no tracking store of its own yet."""
    shutil.copytree(
        source.root,
        dest,
        symlinks=True,
        ignore=shutil.ignore_patterns(".nbops", ".ipynb_checkpoints"),
    )
    return Project(dest)


#: Where an embedded store names its own folder: artifact locations, and the paths a
#: build records (products, the project root) as parameters and tags.
_STORE_PATHS = {
    "experiments": ("artifact_location",),
    "runs": ("artifact_uri",),
    "model_versions": ("source", "storage_location"),
    "params": ("value",),
    "tags": ("value",),
}


def copy_built_with_store(source: Project, dest: Path) -> Project:
    """A copy of a built project with a copy of its tracking store (the registered
    champion included), moved to ``dest``: the store names the copy's own folders, so
    what a test records there never reaches the source's store."""
    import sqlite3

    # The store through SQLite's backup, not as files: this process may hold the
    # source store open, and closing a file of it opened outside SQLite drops every
    # SQLite lock the process holds on it (POSIX advisory locks are per process), after
    # which another process may reset a WAL store's shared index under its feet (SQLite
    # "disk I/O error"s; sqlite.org/howtocorrupt.html, 2.2).
    shutil.copytree(
        source.root,
        dest,
        symlinks=True,
        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "mlflow.db", "mlflow.db-*"),
    )
    with (
        contextlib.closing(sqlite3.connect(source.root / ".nbops" / "mlflow.db")) as src,
        contextlib.closing(sqlite3.connect(dest / ".nbops" / "mlflow.db")) as copy,
    ):
        src.backup(copy)
    with sqlite3.connect(dest / ".nbops" / "mlflow.db") as db:
        for table, columns in _STORE_PATHS.items():
            for column in columns:
                db.execute(
                    f"UPDATE {table} SET {column} = replace({column}, ?, ?) WHERE instr({column}, ?)",
                    (str(source.root), str(dest), str(source.root)),
                )
    return Project(dest)


@pytest.fixture
def copy_built(built_project: Project, tmp_path: Path) -> Callable[..., Project]:
    """Factory: a copy of the session's built reference project (see
    :func:`copy_built_project`). A test that changes one thing and builds again pays for
    the tasks the change reruns, not for a whole build first."""
    counter = iter(range(1000))

    def copy(**env: object) -> Project:
        project = copy_built_project(
            built_project, tmp_path / f"built{next(counter)}" / built_project.root.name
        )
        if env:
            project.set_env(**env)
        return project

    return copy


# -- a real MLflow tracking server -------------------------------------------------


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL after 20 s."""
    stop_processes([process])


def stop_processes(processes: list[subprocess.Popen[bytes] | None]) -> None:
    """SIGTERM to all at once, then SIGKILL to any still running 20 s on: a graceful stop
    takes a second or two each, and one after another they add up (a Dask cluster's)."""
    running = [p for p in processes if p and p.poll() is None]
    for process in running:
        process.terminate()
    deadline = time.monotonic() + 20
    for process in running:
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """A real `mlflow server` with its own SQLite backend and proxied artifacts."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port
        self.uri = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 240) -> MlflowServer:
        # A deadline, not a wait: at load 28 on 2 cores a start took over 90 s.
        self.folder.mkdir(parents=True, exist_ok=True)
        log = open(self.folder / "server.log", "wb")  # noqa: SIM115  (closed with the process)
        self.process = subprocess.Popen(
            [
                str(BIN / "mlflow"),
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
                "--backend-store-uri",
                f"sqlite:///{self.folder / 'mlflow.db'}",
                "--artifacts-destination",
                str(self.folder / "artifacts"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            # Without MLflow's job runner (GenAI scorer jobs; nothing here submits one): it
            # is eight more processes importing MLflow (a start: 14 -> 7 CPU-s, 31 -> 23 s
            # to ready at load 4), and the server then ignored SIGTERM until killed 20 s on.
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"mlflow server exited: {(self.folder / 'server.log').read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(self.uri + "/health", timeout=2):
                    return self
            except OSError:
                time.sleep(0.1)  # a refused connection costs nothing; ready is what we wait for
        raise RuntimeError(
            f"mlflow server did not start in {timeout} s: {(self.folder / 'server.log').read_text()[-3000:]}"
        )

    def stop(self) -> None:
        stop_process(self.process)


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., MlflowServer]]:
    """Factory: ``make_server(port=None, start=True)`` → a real MLflow tracking server."""
    servers: list[MlflowServer] = []

    def make(port: int | None = None, *, start: bool = True) -> MlflowServer:
        server = MlflowServer(tmp_path / f"server{len(servers)}", port or free_port())
        servers.append(server)
        return server.start() if start else server

    yield make
    for server in servers:
        server.stop()


# -- a real PostgreSQL server --------------------------------------------------------


class PostgresServer:
    """A throwaway PostgreSQL cluster on loopback (Debian's ``postgresql`` package),
    trust authentication, data in a temporary folder; run as ``postgres`` when root."""

    def __init__(self, folder: Path) -> None:
        found = sorted(POSTGRES_ROOT.glob("*/bin/initdb"))
        if not found:
            message = "PostgreSQL is not installed: apt-get install postgresql (.ci/run does this)"
            if IN_CI:
                pytest.fail(message)
            pytest.skip(message)
        self.bin = found[-1].parent
        self.folder, self.port = folder, free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def start(self, timeout: float = 60) -> PostgresServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._as:
            shutil.chown(self.folder, "postgres", "postgres")
        data = self.folder / "data"
        init = subprocess.run(
            [*self._as, str(self.bin / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
            capture_output=True,
            text=True,
        )
        if init.returncode:
            raise RuntimeError(f"initdb failed: {init.stdout}{init.stderr}")
        log = open(self.folder / "server.log", "wb")  # noqa: SIM115  (closed with the process)
        self.process = subprocess.Popen(
            [
                *self._as,
                str(self.bin / "postgres"),
                "-D",
                str(data),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                str(self.folder),
                "-c",
                "fsync=off",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
            )
            if ready.returncode == 0:
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.3)
        raise RuntimeError(f"postgres did not start: {(self.folder / 'server.log').read_text()}")

    def create_database(self, name: str) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        stop_process(self.process)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session; ``create_database(name)`` gives a URL."""
    # Not under pytest's tmp folder: that is private to root, and the server runs as postgres.
    folder = Path(tempfile.mkdtemp(prefix="nbops-postgres-"))
    folder.chmod(0o755)
    server = PostgresServer(folder / "cluster")
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
