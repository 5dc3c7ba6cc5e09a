"""nbops errors read as one paragraph in IPython (notebooks, JupyterLab), and importing
nbops outside IPython does not import it (the CLI, the service and the scorer start
without paying for it)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import BIN

RAISE = "import nbops; from nbops.errors import DataError; raise DataError('data.csv is missing: point data.source at it')"


def test_an_nbops_error_in_ipython_is_one_line_without_a_traceback() -> None:
    result = subprocess.run(
        [str(BIN / "ipython"), "--colors=nocolor", "-c", RAISE],
        capture_output=True,
        text=True,
        timeout=120,
    )
    shown = result.stdout + result.stderr
    assert "DataError: data.csv is missing: point data.source at it" in shown
    assert "Traceback" not in shown and "nbops/errors.py" not in shown


def test_importing_nbops_outside_ipython_does_not_import_it() -> None:
    check = "import sys, nbops, nbops.cli; print('IPython' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "False"
