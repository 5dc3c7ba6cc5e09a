"""The Ploomber and Jupyter runtime: how notebooks run and how a build is captured.

- ``executor``, ``kernels``: nbops' Ploomber executor (warm kernels, reports in the
  background, independent tasks side by side);
- ``inprocess``: a papermill engine running a notebook in this process (``nbops
  score``'s report), with the outputs a kernel gives; ``imports``: what a notebook
  imports, read without running it;
- ``hooks``: the Ploomber hooks declared in ``pipeline.yaml`` that turn a build into a
  record (collect only; publishing happens once at the end, through
  :mod:`nbops.tracking`);
- ``recorder``: that publishing, from a child of the build's kernel template (``forks``)
  when it has one, so the build's process does not import MLflow;
- ``lab``: ``make lab``'s contents manager (pipeline notebooks open with their inputs);
- ``nbclean``: notebooks as git holds them (also a pre-commit hook, run by path);
- ``offline``: keep everything the project starts from phoning home.

Above the stage library and :mod:`nbops.tracking`/:mod:`nbops.reports`; below the
commands and the CLI.
"""

from __future__ import annotations
