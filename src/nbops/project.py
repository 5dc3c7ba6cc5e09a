"""Where the project is (the nearest folder, upwards, that holds ``pipeline.yaml``) and
the one fact every command needs from it: the registered model's name."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from nbops.errors import ConfigError

__all__ = ["MODEL_ENV", "in_folder", "model_name", "project_root"]

#: The environment variable naming the registered model, for every command.
MODEL_ENV = "NBOPS_MODEL"


def project_root(start: Path | None = None) -> Path:
    """The project folder above ``start`` (default: the working directory), or ``start``."""
    here = (start or Path.cwd()).resolve()
    return next((p for p in (here, *here.parents) if (p / "pipeline.yaml").is_file()), here)


@contextlib.contextmanager
def in_folder(folder: Path) -> Iterator[None]:
    """Run the block with ``folder`` as the working directory (``contextlib.chdir`` from
    Python 3.11): Ploomber resolves env.yaml from the working directory."""
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def model_name(
    explicit: str | None = None, *, root: Path | None = None, required: bool = True
) -> str | None:
    """The registered model a command works on: ``explicit`` (a command-line option),
    then ``NBOPS_MODEL``, then ``release.model_name`` in the project's env.yaml.

    Raises:
        ConfigError: none of the three names a model (and ``required``), or env.yaml
            cannot be read.
    """
    if explicit:
        return explicit
    if os.environ.get(MODEL_ENV):
        return os.environ[MODEL_ENV]
    root = project_root(root)
    env_file = root / "env.yaml"
    if env_file.is_file():
        import yaml

        try:
            env = yaml.safe_load(env_file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"{env_file} is not valid YAML ({exc}); fix it, or name the model with --model or {MODEL_ENV}."
            ) from exc
        name = (env.get("release") or {}).get("model_name") if isinstance(env, dict) else None
        if name:
            return str(name)
    if not required:
        return None
    raise ConfigError(
        f"No model name: {root} is not an nbops project with release.model_name in env.yaml. "
        f"Run the command in the project folder, pass --model NAME, or set {MODEL_ENV}."
    )
