"""The environment's start-up hook: no grammar compiled at import, the same format checks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nbops.build import offline, startup

pytest.importorskip("rfc3987_syntax")

PROBE = """
import json, sys
import jsonschema  # what ploomber, papermill and nbformat import
compiled_at_import = "rfc3987_syntax.syntax_helpers" in sys.modules
# A module scan (pickle's and skops' whichmodule) asks every module for names it lacks.
import rfc3987_syntax
missing = getattr(rfc3987_syntax, "NoSuchName", None)
compiled_at_import |= "rfc3987_syntax.syntax_helpers" in sys.modules or missing is not None
checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
values = ["http://example.com/ü", "http://ex ample.com", "/relative/päth?q=1", "a b", "x:"]
answers = {
    f: [checker.conforms(v, f) for v in values] for f in ("iri", "iri-reference")
}
from rfc3987_syntax import syntax_helpers as real
expected = {
    f: [real.is_valid_syntax(f.replace("-", "_"), v) for v in values]
    for f in ("iri", "iri-reference")
}
print(json.dumps({"compiled_at_import": compiled_at_import, "answers": answers,
                  "expected": expected}))
"""


def probe() -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(result.stdout)


def test_the_environment_imports_jsonschema_without_compiling_the_iri_grammar() -> None:
    # The venv's start-up hook (installed by `make build`/`make test`) is in place.
    seen = probe()
    assert seen["compiled_at_import"] is False
    # ...and the deferred checks answer exactly as the package itself does.
    assert seen["answers"] == seen["expected"]
    assert seen["answers"]["iri"] == [True, False, False, False, True]


def test_install_copies_the_hook_and_a_pth_that_calls_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sysconfig

    real_get_paths = sysconfig.get_paths
    monkeypatch.setattr(
        sysconfig,
        "get_paths",
        lambda *a, **k: {**real_get_paths(*a, **k), "purelib": str(tmp_path)},
    )
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "prefix"))
    offline.install()
    copied = tmp_path / f"{offline.STARTUP_MODULE}.py"
    assert copied.read_text() == Path(startup.__file__).read_text()
    pth = (tmp_path / offline.STARTUP_PTH_NAME).read_text()
    assert pth == f"import {offline.STARTUP_MODULE}; {offline.STARTUP_MODULE}.start()\n"


def test_the_hook_leaves_an_imported_or_missing_package_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, startup.PACKAGE, sys.modules.get(startup.PACKAGE, object()))
    assert startup.defer_iri_grammar() is False
    monkeypatch.delitem(sys.modules, startup.PACKAGE)
    monkeypatch.setattr(startup, "PACKAGE", "no_such_package_for_nbops_tests")
    assert startup.defer_iri_grammar() is False


# -- deferred imports in a ploomber process ------------------------------------------

SRC = Path(startup.__file__).parents[2]

PACKAGES = {
    "ledger.py": "import threading\nran = []\nentered = threading.Event()\nrelease = threading.Event()\n",
    "heavy/__init__.py": (
        "import ledger\nledger.ran.append(__name__)\nvalue = 42\n"
        "from heavy import sub  # a package that imports its own submodule\n"
        "def double(x):\n    return 2 * x\n"
    ),
    "heavy/sub.py": "import ledger\nledger.ran.append(__name__)\n",
    "heavy/other.py": "import ledger\nledger.ran.append(__name__)\nfrom heavy import value as base\n",
    "leaf.py": (
        "import ledger\nledger.ran.append(__name__)\nCONSTANT = 1\n"
        "def answer(question='?'):\n    return (question, 42)\n"
    ),
    "broken.py": "import ledger\nledger.ran.append(__name__)\nraise ValueError('broken on purpose')\n",
    "slow.py": (
        "import ledger\nledger.ran.append(__name__)\nledger.entered.set()\n"
        "ledger.release.wait(60)\nvalue = 'ready'\n"
    ),
}

PRELUDE = """
import json, sys
from nbops.build import startup
assert startup.defer_imports({names!r}, programs=None)
import ledger
"""


def run_deferred(tmp_path: Path, names: dict, code: str, **env: str) -> dict:
    """Run ``code`` in a fresh interpreter with ``names`` deferred; it prints JSON."""
    for name, text in PACKAGES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return run_python(PRELUDE.format(names=names) + code, tmp_path, **env)


def run_python(code: str, path: Path, **env: str) -> dict:
    """Run ``code`` in a fresh interpreter with ``path`` and this checkout on its path;
    the JSON its last line prints."""
    import os

    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": f"{path}{os.pathsep}{SRC}", **env},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_deferred_package_runs_once_on_first_use_with_the_same_modules(tmp_path: Path) -> None:
    seen = run_deferred(
        tmp_path,
        {"heavy": ()},
        """
import heavy
before = list(ledger.ran)
doubled = heavy.double(21)
print(json.dumps({"before": before, "after": ledger.ran, "doubled": doubled,
                  "one_sub": heavy.sub is sys.modules["heavy.sub"],
                  "plain": type(heavy).__name__, "again": heavy.double(1)}))
""",
    )
    assert seen["before"] == []
    assert seen["doubled"] == 42 and seen["after"] == ["heavy", "heavy.sub"]
    assert seen["one_sub"] and seen["plain"] == "module" and seen["again"] == 2


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        # the package imports this one itself: still one module, run once
        ("import heavy.sub as got", ["heavy", "heavy.sub"]),
        ("from heavy import other as got", ["heavy", "heavy.sub", "heavy.other"]),
    ],
)
def test_a_submodule_imported_first_runs_its_package_first(
    tmp_path: Path, statement: str, expected: list[str]
) -> None:
    seen = run_deferred(
        tmp_path,
        {"heavy": ()},
        f"""
{statement}
print(json.dumps({{"ran": ledger.ran, "same": got is sys.modules[got.__name__],
                  "attr": getattr(sys.modules["heavy"], got.__name__.split(".")[1]) is got,
                  "base": getattr(got, "base", 42), "spec": got.__spec__.name}}))
""",
    )
    assert seen["ran"] == expected
    assert seen["same"] and seen["attr"] and seen["base"] == 42
    assert seen["spec"] in ("heavy.sub", "heavy.other")


def test_a_listed_name_is_a_stand_in_until_called_and_no_other_name_is(tmp_path: Path) -> None:
    seen = run_deferred(
        tmp_path,
        {"leaf": ("answer",)},
        """
from leaf import answer
before = list(ledger.ran)
got = answer("life")
import leaf
print(json.dumps({"before": before, "got": got, "after": ledger.ran,
                  "real_now": leaf.answer("x"), "name": answer.__name__}))
""",
    )
    assert seen["before"] == [] and seen["got"] == ["life", 42] and seen["after"] == ["leaf"]
    assert seen["real_now"] == ["x", 42] and seen["name"] == "answer"
    unlisted = run_deferred(
        tmp_path,
        {"leaf": ("answer",)},
        'from leaf import CONSTANT\nprint(json.dumps({"ran": ledger.ran, "c": CONSTANT}))',
    )
    assert unlisted == {"ran": ["leaf"], "c": 1}, "a name not listed runs the module"


def test_a_module_that_fails_fails_where_it_is_first_used(tmp_path: Path) -> None:
    seen = run_deferred(
        tmp_path,
        {"broken": ()},
        """
import broken
errors = []
for _ in range(2):
    try:
        broken.anything if "broken" in sys.modules else __import__("broken").anything
    except ValueError as exc:
        errors.append(str(exc))
print(json.dumps({"errors": errors, "gone": "broken" not in sys.modules}))
""",
    )
    assert seen == {"errors": ["broken on purpose"] * 2, "gone": True}


def test_threads_using_a_deferred_module_at_once_run_it_once(tmp_path: Path) -> None:
    seen = run_deferred(
        tmp_path,
        {"slow": ()},
        """
import threading
import slow
values, errors = [], []
def use():
    try:
        values.append(slow.value)
    except Exception as exc:
        errors.append(repr(exc))
first = threading.Thread(target=use)
first.start()
assert ledger.entered.wait(60)  # the first thread is running the module's code
others = [threading.Thread(target=use) for _ in range(6)]
for t in others:
    t.start()
ledger.release.set()
for t in [first, *others]:
    t.join(60)
print(json.dumps({"values": values, "errors": errors, "ran": ledger.ran}))
""",
    )
    assert seen == {"values": ["ready"] * 7, "errors": [], "ran": ["slow"]}


def test_only_a_ploomber_process_defers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.setattr(sys, "argv", ["/venv/bin/python", "-m", "pytest"])
    assert startup.defer_imports({"no_such_module_for_nbops": ()}) is False
    monkeypatch.setattr(sys, "argv", ["/venv/bin/ploomber", "build"])
    monkeypatch.setenv(startup.OFF_ENV, "off")
    assert startup.defer_imports({"no_such_module_for_nbops": ()}) is False
    monkeypatch.delenv(startup.OFF_ENV)
    assert startup.defer_imports({"no_such_module_for_nbops": ()}) is True
    assert startup.defer_imports({"no_such_module_for_nbops": ()}) is False, "once"


REAL_PROBE = """
import json, sys, tempfile, os
sys.argv = ["/venv/bin/ploomber", "build"]
from nbops.build import startup
assert startup.defer_imports()
import ploomber
from ploomber.io import serialize, unserialize
from ploomber.executors import Serial
import papermill.iorw
import ploomber.cli.io
import ploomber_cli.cli
imported = sorted(m for m in startup.DEFERRED if m in sys.modules)
ran_at_import = [m for m in imported if m not in startup._pending]
heavy = [m for m in ("pandas.core", "matplotlib.colors", "sqlalchemy.engine", "prompt_toolkit",
                     "numpy", "joblib.numpy_pickle", "requests.adapters", "jupyter_server",
                     "tornado.web", "bs4.element", "pyflakes.checker")
         if m in sys.modules]
frame = unserialize.pd.DataFrame({"a": [1, 2]})
path = os.path.join(tempfile.mkdtemp(), "obj.joblib")
serialize.joblib_dump({"x": [1, 2]}, path)
import pandas, joblib
from nbconvert.exporters.html import BeautifulSoup  # a stand-in until called
soup = BeautifulSoup("<p>x</p>", features="html.parser").p.text
os.chdir(tempfile.mkdtemp())
ploomber_cli.cli.cli(["scaffold", "proj"], standalone_mode=False)  # runs ploomber_scaffold's code
scaffolded = sorted(os.listdir("proj"))
from ploomber.cli import examples
print(json.dumps({"soup": soup, "scaffolded": scaffolded, "examples": callable(examples.main), "imported": imported, "ran_at_import": ran_at_import, "heavy": heavy, "shape": list(frame.shape),
                  "same": unserialize.pd is pandas is sys.modules["pandas"],
                  "loaded": unserialize.joblib_load(path), "real": joblib.load(path),
                  "plt": hasattr(sys.modules["ploomber_engine.profiling"].plt, "figure")}))
"""


def test_ploomber_imports_without_running_the_deferred_packages_and_they_work() -> None:
    import os

    result = subprocess.run(
        [sys.executable, "-c", REAL_PROBE],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(SRC), "MPLBACKEND": "Agg"},
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    # The process started without the environment's hook (argv came later): what ran
    # came from `import ploomber` itself, which none of them needs.
    assert seen["imported"] == sorted(startup.DEFERRED), "each is imported by ploomber"
    assert seen["ran_at_import"] == [] and seen["heavy"] == []
    assert seen["shape"] == [2, 1] and seen["same"] and seen["plt"]
    assert seen["loaded"] == seen["real"] == {"x": [1, 2]}
    assert seen["soup"] == "x"
    # `ploomber scaffold` and `ploomber examples` work when used
    assert "pipeline.yaml" in seen["scaffolded"] and seen["examples"]


def test_entry_points_are_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata as metadata

    reads: list[dict] = []
    real = metadata.entry_points

    def counting(**params: object) -> object:
        reads.append(params)
        return real(**params)

    monkeypatch.setattr(metadata, "entry_points", counting)
    monkeypatch.setattr(startup, "_entry_points", {})
    startup.cache_entry_points()
    first = metadata.entry_points(group="nbconvert.exporters")
    assert "html" in first.names
    assert list(first) == list(real(group="nbconvert.exporters")), "the same selection"
    assert metadata.entry_points(group="nbconvert.exporters") is first
    scripts = metadata.entry_points(group="console_scripts")
    assert scripts.names == real(group="console_scripts").names
    assert reads == [{}], "every group from one reading"
    metadata.entry_points()  # every group: a mutable mapping, never shared
    metadata.entry_points()
    assert reads == [{}, {}, {}]
    startup.cache_entry_points()
    metadata.entry_points(group="nbconvert.exporters")
    assert len(reads) == 3, "installed once"


EXIT_PROBE = """
import atexit, os, sys
sys.argv = ["/venv/bin/ploomber", "build"]
from nbops.build import startup
assert startup.exit_without_collecting()
class Cycle:
    def __del__(self):
        os.write(1, b"collected at exit")
cycle = Cycle()
cycle.me = cycle
atexit.register(print, "exit handler ran", end=";")
log = open({path!r}, "w")
log.write("written, never closed")
print("no newline", end=";")
sys.exit(3)
"""


def test_a_ploomber_process_skips_the_collections_at_exit_but_exits_as_usual(
    tmp_path: Path,
) -> None:
    # Python's last collections at exit visit every object Ploomber, papermill and MLflow
    # made (0.4–0.6 s of CPU per `ploomber` command): skipped. What a user sees of the
    # exit stays: the status, exit handlers, output, a file left open still written.
    import os

    path = tmp_path / "left-open.txt"
    result = subprocess.run(
        [sys.executable, "-c", EXIT_PROBE.format(path=str(path))],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )

    assert result.returncode == 3, result.stderr
    assert result.stdout == "no newline;exit handler ran;"  # no "collected at exit"
    assert path.read_text() == "written, never closed"


EXIT_AT_ONCE_PROBE = """
import atexit, sys
sys.argv = [{program!r}, "score"]
from nbops.build import startup
atexit.register(print, "exit handler ran", end=";")
print("no newline", end=";")
sys.stderr.write("to stderr;")
startup.exit_at_once(3)
print("returned", end=";")
"""


@pytest.mark.parametrize(
    ("program", "status", "out"),
    [
        ("/venv/bin/nbops", 3, "no newline;"),  # the command ends at once, all it printed shown
        ("/venv/bin/python", 0, "no newline;returned;exit handler ran;"),  # a test's process
    ],
)
def test_an_nbops_command_that_is_done_exits_at_once_with_its_output(
    program: str, status: int, out: str
) -> None:
    # `nbops score` ends without Python's exit (0.25 s of CPU, up to 0.5 s of wall
    # time): what it printed is shown and the status is the one given; a process that
    # is not the `nbops` program (pytest calling the command) goes on as usual.
    import os

    result = subprocess.run(
        [sys.executable, "-c", EXIT_AT_ONCE_PROBE.format(program=program)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )

    assert result.returncode == status, result.stderr
    assert result.stdout == out and result.stderr.endswith("to stderr;")


def test_only_a_ploomber_process_skips_the_collections_at_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import atexit

    monkeypatch.setattr(atexit, "register", lambda fn: None)
    monkeypatch.setattr(sys, "argv", ["/venv/bin/python", "-m", "pytest"])
    assert startup.exit_without_collecting() is False
    monkeypatch.setattr(sys, "argv", ["/venv/bin/ploomber", "status"])
    monkeypatch.setenv(startup.OFF_ENV, "off")
    assert startup.exit_without_collecting() is False
    monkeypatch.delenv(startup.OFF_ENV)
    assert startup.exit_without_collecting() is True


GC_PROBE = """
import gc, json, os, sys, time
sys.argv = ["/venv/bin/ploomber", "build"]
from nbops.build import startup
startup.COLLECT_AFTER = {after}
arranged = startup.collect_later()
held = not gc.isenabled()
collections = []
gc.callbacks.append(lambda phase, info: phase == "start" and collections.append(info))
import ploomber  # what loading a pipeline imports
loading = len(collections)
{then}
"""


def gc_probe(then: str, after: float = 60.0, path: Path = SRC, **env: str) -> dict:
    return run_python(GC_PROBE.format(after=after, then=then), path, **env)


def test_no_collection_while_a_pipeline_loads_then_the_collector_runs_again() -> None:
    # About 330 collections (0.2-0.3 s of CPU) of objects that all stay alive while
    # `ploomber status` loads the reference pipeline: none, until the pipeline is loaded.
    seen = gc_probe(
        "frozen_before = gc.get_freeze_count()\n"
        "again = startup.pipeline_loaded()\n"
        "print(json.dumps({'arranged': arranged, 'loading': loading, 'again': again,"
        " 'enabled': gc.isenabled(), 'frozen': gc.get_freeze_count() > frozen_before,"
        " 'collected': gc.collect() >= 0}))"
    )
    assert seen["arranged"] is True and seen["loading"] == 0
    # Once loaded, what is alive is out of the collector's reach, and it runs again.
    assert seen["again"] is True and seen["enabled"] is True and seen["frozen"] is True


def test_the_collector_runs_again_by_a_deadline_and_in_a_forked_child() -> None:
    # A pipeline without nbops' executor or hooks never says it is loaded: the
    # collector runs again after COLLECT_AFTER seconds; a forked child (Ploomber's
    # parallel executor) collects as usual.
    seen = gc_probe(
        "r, w = os.pipe()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.write(w, b'1' if gc.isenabled() else b'0'); os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "print(json.dumps({'child': os.read(r, 1) == b'1', 'parent': gc.isenabled()}))"
    )
    assert seen == {"child": True, "parent": False}
    seen = gc_probe(
        "deadline = time.monotonic() + 60\n"
        "while not gc.isenabled() and time.monotonic() < deadline:\n"
        "    time.sleep(0.01)  # polling the timer's effect, with a deadline\n"
        "print(json.dumps({'held': held, 'enabled': gc.isenabled()}))",
        after=1.0,
    )
    assert seen == {"held": True, "enabled": True}


def test_only_a_ploomber_process_holds_the_collector_back(monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    monkeypatch.setattr(sys, "argv", ["/venv/bin/python", "-m", "pytest"])
    assert startup.collect_later() is False and gc.isenabled()
    assert startup.out_of_reach() is False
    seen = gc_probe(
        "print(json.dumps({'arranged': arranged, 'loading': loading}))",
        NBOPS_DEFER_IMPORTS="off",
    )
    assert seen["arranged"] is False and seen["loading"] > 0


def test_the_nbops_executor_runs_its_tasks_with_the_collector_on(tmp_path: Path) -> None:
    (tmp_path / "gctask.py").write_text(
        "import gc\n\ndef task(product):\n    open(str(product), 'w').write(str(gc.isenabled()))\n"
    )
    seen = gc_probe(
        "from ploomber import DAG\n"
        "from ploomber.tasks import PythonCallable\n"
        "from ploomber.products import File\n"
        "from nbops.build.executor import NotebookExecutor\n"
        "from gctask import task\n"
        f"out = {str(tmp_path / 'out.txt')!r}\n"
        "dag = DAG(executor=NotebookExecutor())\n"
        "PythonCallable(task, File(out), dag=dag, name='task')\n"
        "dag.build(force=True)\n"
        "print(json.dumps({'during_load': loading, 'task_saw': open(out).read()}))",
        path=tmp_path,
    )
    assert seen == {"during_load": 0, "task_saw": "True"}


@pytest.mark.parametrize(
    ("sections", "warned"),
    [
        ({"monitor": {"alias": "champion"}}, False),  # pipeline.monitor.yaml's section
        ({"monitr": {"alias": "champion"}}, True),  # misspelt: still said
        ({"monitor": {"alias": "champion"}, "trian": {"seed": 1}}, True),
    ],
)
def test_a_ploomber_process_does_not_call_the_monitor_section_of_env_unused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sections: dict, warned: bool
) -> None:
    import warnings

    import yaml
    from ploomber.spec import DAGSpec

    (tmp_path / "task.py").write_text("# %% tags=['parameters']\nupstream = None\nproduct = None\n")
    (tmp_path / "pipeline.yaml").write_text(
        "tasks:\n  - source: task.py\n    product: out.ipynb\n    params: {seed: '{{seed}}'}\n"
    )
    (tmp_path / "env.yaml").write_text(yaml.safe_dump({"seed": 1, **sections}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["/venv/bin/ploomber", "build"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert startup.quiet_other_pipelines_sections() is True
        DAGSpec("pipeline.yaml")

    said = [str(w.message) for w in caught if "unused in the spec" in str(w.message)]
    assert bool(said) is warned, said
