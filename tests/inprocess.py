"""`nbops` commands run in the test's own process (click's CliRunner on ``nbops.cli``).

A subprocess ``nbops ...`` starts Python and imports pandas, scikit-learn and MLflow
again: 1-3 CPU-s each. Tests whose point is the command's output, exit code and
effects, not the process boundary, run it here instead, in the project's folder, and
get what :func:`subprocess.run` would have given them: an uncaught exception is a
traceback on stderr and exit 1, as Python shows it.
"""

from __future__ import annotations

import contextlib
import subprocess
import traceback
from pathlib import Path

__all__ = ["nbops"]


def nbops(root: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    """``nbops ARGS`` run in ``root``, in this process."""
    from click.testing import CliRunner

    from nbops.cli import main

    with contextlib.chdir(root):
        result = CliRunner().invoke(main, list(args), prog_name="nbops")
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "Traceback (most recent call last):\n" + "".join(
            traceback.format_exception(result.exception)
        )
    done = subprocess.CompletedProcess(["nbops", *args], result.exit_code, result.stdout, stderr)
    if check and done.returncode != 0:
        raise AssertionError(
            f"nbops {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{stderr}"
        )
    return done
