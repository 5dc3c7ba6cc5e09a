"""Keep everything the project starts from phoning home.

Ploomber sends anonymous usage statistics and checks PyPI for new versions unless told
not to, and installing it enables the ``ploomber_extension`` Jupyter server extension,
which can store a vendor cloud key and upload files. ``python -m nbops.build.offline`` (run by
``make build`` / ``make test`` when the venv is set up) makes that environment quiet for
every process it starts, not only those the Makefile starts:

- a ``.pth`` file in site-packages sets ``PLOOMBER_STATS_ENABLED=false``,
  ``PLOOMBER_VERSION_CHECK_DISABLED=true`` and ``MLFLOW_DISABLE_TELEMETRY=true`` (MLflow
  3 reports usage to its vendor otherwise) at interpreter start-up (``ploomber build``,
  kernels, JupyterLab, ``mlflow server``), unless the user set them;
- ``ploomber_extension`` is disabled in the environment's Jupyter config.

It also installs the environment's start-up hook (:mod:`nbops.build.startup`, copied
into site-packages with a ``.pth`` file that calls it): no grammar compiled at import,
and in a ``ploomber`` process the packages it imports only to bind a name run on first use.

``python -m nbops.build.offline --check`` reports the state and exits non-zero if anything
could still call out.
"""

from __future__ import annotations

import json
import os
import sys
import sysconfig
from pathlib import Path

from nbops.state import atomic_write

__all__ = [
    "ENV",
    "PTH_NAME",
    "STARTUP_MODULE",
    "STARTUP_PTH",
    "STARTUP_PTH_NAME",
    "check",
    "install",
]

ENV = {
    "PLOOMBER_STATS_ENABLED": "false",
    "PLOOMBER_VERSION_CHECK_DISABLED": "true",
    # MLflow 3's usage reports (nbops.tracking sets it too, for installs without this hook)
    "MLFLOW_DISABLE_TELEMETRY": "true",
}
PTH_NAME = "nbops-offline.pth"
#: The start-up hook as a top-level module of site-packages, and the .pth that calls it.
STARTUP_MODULE = "_nbops_startup"
STARTUP_PTH_NAME = "nbops-startup.pth"
STARTUP_PTH = f"import {STARTUP_MODULE}; {STARTUP_MODULE}.start()\n"
_DISABLED_EXTENSIONS = ("ploomber_extension",)


def _pth_path() -> Path:
    return Path(sysconfig.get_paths()["purelib"], PTH_NAME)


def _server_config_path() -> Path:
    # The environment-level Jupyter config (what `--sys-prefix` writes); it is read after
    # the jupyter_server_config.d/ snippets that packages install, so it wins.
    return Path(sys.prefix, "etc", "jupyter", "jupyter_server_config.json")


def install() -> list[str]:
    """Write the start-up file and disable vendor extensions; return what was done."""
    done = []
    lines = "".join(f"import os; os.environ.setdefault({k!r}, {v!r})\n" for k, v in ENV.items())
    atomic_write(_pth_path(), lines)
    done.append(f"wrote {_pth_path()}")
    site_packages = _pth_path().parent
    startup = Path(__file__).with_name("startup.py").read_text()
    atomic_write(site_packages / f"{STARTUP_MODULE}.py", startup)
    atomic_write(site_packages / STARTUP_PTH_NAME, STARTUP_PTH)
    done.append(f"wrote {site_packages / STARTUP_PTH_NAME} (start-up hook)")
    config_path = _server_config_path()
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    extensions = config.setdefault("ServerApp", {}).setdefault("jpserver_extensions", {})
    for name in _DISABLED_EXTENSIONS:
        extensions[name] = False
    atomic_write(config_path, json.dumps(config, indent=2) + "\n")
    done.append(f"disabled {', '.join(_DISABLED_EXTENSIONS)} in {config_path}")
    return done


def check() -> list[str]:
    """Return the problems that would let the environment call out (empty when quiet)."""
    problems = []
    for key, value in ENV.items():
        if os.environ.get(key, "").lower() != value:
            problems.append(f"{key} is {os.environ.get(key)!r}, expected {value!r}")
    config_path = _server_config_path()
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    extensions = config.get("ServerApp", {}).get("jpserver_extensions", {})
    for name in _DISABLED_EXTENSIONS:
        if extensions.get(name) is not False:
            problems.append(f"Jupyter server extension {name} is not disabled in {config_path}")
    return problems


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--check" in argv:
        problems = check()
        for p in problems:
            print(f"not offline: {p}", file=sys.stderr)
        return 1 if problems else 0
    for line in install():
        print(f"nbops.build.offline: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
