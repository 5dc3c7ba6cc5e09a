"""Short error messages for nbops errors inside notebooks.

A user who points the pipeline at a missing file should read one paragraph naming
the problem and the fix, not a traceback through nbops' internals. When nbops is
imported in an IPython kernel (a papermill run or JupyterLab), errors that nbops raises
on purpose (:class:`~nbops.errors.NbopsError`) are shown as ``ErrorType: message``;
every other exception keeps its full traceback. Set ``NBOPS_TRACEBACKS=1`` to see
full tracebacks for nbops errors too.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from nbops.errors import NbopsError


def install() -> None:
    """Register the short display for nbops errors in the running IPython shell, if any."""
    if os.environ.get("NBOPS_TRACEBACKS", "").lower() in {"1", "true", "yes"}:
        return
    if "IPython" not in sys.modules:  # not in IPython (a kernel has imported it): nothing
        return  # to do, and the CLI, service and scorer do not pay IPython's import
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None or getattr(shell, "_nbops_errors_installed", False):
        return
    shell.set_custom_exc((NbopsError,), _show_short)
    shell._nbops_errors_installed = True


def _show_short(
    shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None
) -> list[str]:
    lines = [f"{etype.__name__}: {value}"]
    shell._showtraceback(etype, value, lines)
    return lines
