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
    assert pth == f"import {offline.STARTUP_MODULE}; {offline.STARTUP_MODULE}.defer_iri_grammar()\n"


def test_the_hook_leaves_an_imported_or_missing_package_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, startup.PACKAGE, sys.modules.get(startup.PACKAGE, object()))
    assert startup.defer_iri_grammar() is False
    monkeypatch.delitem(sys.modules, startup.PACKAGE)
    monkeypatch.setattr(startup, "PACKAGE", "no_such_package_for_nbops_tests")
    assert startup.defer_iri_grammar() is False
