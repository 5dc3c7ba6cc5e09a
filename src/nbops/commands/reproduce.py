"""``nbops reproduce RUN``: rebuild a recorded build from what was recorded, and compare.

The run record names everything a build depended on. Reproducing it means:

1. **code**: a git worktree of the recorded commit, in a temporary folder, with the
   recorded diff applied when the build ran on uncommitted changes; every pipeline
   file's hash is checked against the record;
2. **data**: the recorded snapshot (uploaded once per content hash) is downloaded and
   used as the data source, so the data does not depend on a file that may have
   changed since. A project without one (an adopted Ploomber project reads its own
   inputs) is rebuilt from the files the commit has; the files it may read that git
   does not hold (ignored or untracked, not a product of the build) are named;
3. **parameters**: the recorded command's ``--env--`` overrides on the commit's env.yaml;
4. a forced build there, recorded in the worktree's own embedded store (the team's
   store and registry are never touched);
5. the reproduced record against the original: the data's content hash, then every
   metric of every task, exactly or within ``tolerance`` (relative), with timings
   reported but not judged; differing package versions are listed as the likely reason.
   A build that recorded no metrics cannot be shown to reproduce: that is a failure
   that says so, never "0/0 metrics match".
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbops.errors import TrackingError

__all__ = ["MetricCheck", "Reproduction", "compare_metrics", "reproduce", "unrestored_inputs"]

MATCH, WITHIN, DIFFERS, MISSING, TIMING = (
    "match",
    "within tolerance",
    "DIFFERS",
    "MISSING",
    "timing, not judged",
)
# Metrics that measure time: they never reproduce exactly and say nothing about the model.
_TIMING = re.compile(r"(latency|duration|seconds|elapsed|(^|[._])(ms|s|time)([._]|$)|per_row)")


@dataclass
class MetricCheck:
    name: str
    recorded: float | None
    reproduced: float | None
    verdict: str

    @property
    def ok(self) -> bool:
        return self.verdict in (MATCH, WITHIN, TIMING)


@dataclass
class Reproduction:
    run_id: str
    commit: str
    project: Path
    tolerance: float
    build_ok: bool = False
    reproduced_run_id: str | None = None
    data_recorded: str | None = None
    data_reproduced: str | None = None
    checks: list[MetricCheck] = field(default_factory=list)
    source_mismatches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    package_changes: list[str] = field(default_factory=list)
    #: files the original project has that the commit does not (git-ignored or
    #: untracked, not products): inputs the rebuild cannot restore
    unrestored: list[str] = field(default_factory=list)
    log: Path | None = None

    @property
    def matches(self) -> bool:
        return (
            self.build_ok
            and not self.source_mismatches
            and self.data_recorded == self.data_reproduced
            and bool(self._judged)
            and all(c.ok for c in self.checks)
        )

    @property
    def _judged(self) -> list[MetricCheck]:
        return [c for c in self.checks if c.verdict != TIMING]

    def render(self) -> str:
        lines = [
            f"Reproduction of build {self.run_id[:12]} (commit {self.commit[:12]}), rebuilt in {self.project}",
        ]
        lines += [f"  note: {n}" for n in self.notes]
        if self.source_mismatches:
            lines.append("  SOURCES DIFFER from the record: " + ", ".join(self.source_mismatches))
        else:
            lines.append("  sources: every pipeline file matches its recorded hash")
        if self.unrestored:
            shown = ", ".join(self.unrestored[:10])
            more = f" and {len(self.unrestored) - 10} more" if len(self.unrestored) > 10 else ""
            lines.append(
                f"  inputs not restored (not in the commit: git-ignored or untracked): {shown}{more}"
            )
        if not self.build_ok:
            lines.append(f"  BUILD FAILED: see {self.log}")
            return "\n".join(lines)
        same = self.data_recorded == self.data_reproduced
        lines.append(
            f"  data: {'match' if same else 'DIFFERS'} ({self.data_recorded}"
            + ("" if same else f" recorded, {self.data_reproduced} reproduced")
            + ")"
        )
        tolerance = "exact" if self.tolerance == 0 else f"relative tolerance {self.tolerance:g}"
        lines.append(f"  metrics ({tolerance}):")
        width = max((len(c.name) for c in self.checks), default=10)
        for c in self.checks:
            lines.append(
                f"    {c.name:<{width}}  {_fmt(c.recorded):>20}  {_fmt(c.reproduced):>20}  {c.verdict}"
            )
        if self.package_changes and not self.matches:
            lines.append("  packages that differ from the recorded environment (a likely reason):")
            lines += [f"    {p}" for p in self.package_changes[:30]]
        verdict = "REPRODUCED" if self.matches else "NOT REPRODUCED"
        judged = self._judged
        if not judged:
            lines.append(
                f"NOT REPRODUCED: build {self.run_id[:12]} recorded no metrics (timings aside), "
                "so nothing shows that the rebuild computed the same results. Record what your "
                "build measures (a `metrics` JSON product, or `mlflow.log_metric` in a task) "
                "and reproduce a build made after that."
            )
            return "\n".join(lines)
        lines.append(
            f"{verdict}: {sum(c.ok for c in judged)}/{len(judged)} metrics match"
            + (
                f" (run {self.reproduced_run_id[:12]} in {self.project / '.nbops'})"
                if self.reproduced_run_id
                else ""
            )
        )
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.10g}"


def compare_metrics(
    recorded: dict[str, float], reproduced: dict[str, float], *, tolerance: float = 0.0
) -> list[MetricCheck]:
    """One check per metric in either record; ``tolerance`` is relative (0: exact)."""
    checks = []
    for name in sorted(set(recorded) | set(reproduced)):
        a, b = recorded.get(name), reproduced.get(name)
        if _TIMING.search(name):
            verdict = TIMING
        elif a is None or b is None:
            verdict = MISSING
        elif a == b or (math.isnan(a) and math.isnan(b)):
            verdict = MATCH
        elif abs(a - b) <= tolerance * max(abs(a), abs(b)):
            verdict = WITHIN
        else:
            verdict = DIFFERS
        checks.append(MetricCheck(name, a, b, verdict))
    return checks


def reproduce(
    store: Any, root: Path, ref: str, *, tolerance: float = 0.0, keep: bool = False
) -> Reproduction:
    """Rebuild build ``ref`` of the project at ``root`` (see the module docstring)."""
    run = store.resolve(ref)
    run_id = run.info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        record = json.loads(store.download(run_id, "record.json", Path(tmp)).read_text())
    commit = (record.get("git") or {}).get("commit")
    if not commit:
        raise TrackingError(
            f"Build {run_id[:12]} was made outside a git repository, so no commit was recorded and its code cannot be restored. Commit the project to git and build again to get reproducible runs."
        )
    top = _git(root, "rev-parse", "--show-toplevel").strip()
    prefix = _git(root, "rev-parse", "--show-prefix").strip()
    if subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=top).returncode:
        raise TrackingError(
            f"Build {run_id[:12]} ran on commit {commit[:12]}, which this repository does not have. Fetch it (git fetch --all) and try again."
        )
    data_run = run.data.tags.get("data.run_id")

    workdir = Path(tempfile.mkdtemp(prefix="nbops-reproduce-"))
    code = workdir / "code"
    _git(Path(top), "worktree", "add", "--detach", str(code), commit)
    project = code / prefix
    result = Reproduction(run_id=run_id, commit=commit, project=project, tolerance=tolerance)
    try:
        _restore_changes(store, run_id, record, code, result)
        result.source_mismatches = _source_mismatches(project, record.get("sources") or {})
        snapshot = None
        if data_run:
            snapshot = _restore_snapshot(store, data_run, record, workdir)
        else:
            result.notes.append(
                "no data snapshot was recorded: the rebuild reads its inputs as the commit has them"
            )
            result.unrestored = unrestored_inputs(root, project, record)
        result.log = workdir / "build.log"
        result.build_ok = _build(project, record.get("command") or [], snapshot, result.log)
        if result.build_ok:
            _compare(store, record, project, result)
        result.package_changes = _package_changes(store, run_id, workdir)
    finally:
        if not keep:
            _git(Path(top), "worktree", "remove", "--force", str(code))
            if result.log and result.log.is_file():
                kept = Path(tempfile.gettempdir()) / f"nbops-reproduce-{run_id[:12]}.log"
                shutil.copy2(result.log, kept)
                result.log = kept
            shutil.rmtree(workdir, ignore_errors=True)
    return result


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        if args[:1] == ("rev-parse",):
            raise TrackingError(
                f"{cwd} is not in a git repository: `nbops reproduce` restores the recorded commit from the project's repository."
            )
        raise TrackingError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _restore_changes(
    store: Any, run_id: str, record: dict[str, Any], code: Path, result: Reproduction
) -> None:
    git = record.get("git") or {}
    if not git.get("dirty"):
        return
    with tempfile.TemporaryDirectory() as tmp:
        try:
            patch = store.download(run_id, "git/diff.patch", Path(tmp))
        except Exception:
            patch = None
        if patch is None or not patch.read_text().strip():
            result.notes.append("the build ran on uncommitted changes that were not recorded")
        else:
            done = subprocess.run(
                ["git", "apply", "--whitespace=nowarn", str(patch)],
                cwd=code,
                capture_output=True,
                text=True,
            )
            if done.returncode:
                result.notes.append(
                    f"the recorded uncommitted changes do not apply: {done.stderr.strip()}"
                )
            else:
                result.notes.append(
                    "the build ran on uncommitted changes: the recorded diff was applied"
                )
    if git.get("untracked"):
        result.notes.append(
            "untracked files at build time are not recorded: " + ", ".join(git["untracked"][:10])
        )


def _source_mismatches(project: Path, sources: dict[str, str]) -> list[str]:
    from nbops.hashing import file_sha256

    return [
        rel
        for rel, digest in sorted(sources.items())
        if not (project / rel).is_file() or file_sha256(project / rel) != digest
    ]


def _restore_snapshot(store: Any, data_run: str, record: dict[str, Any], workdir: Path) -> Path:
    name = Path((record.get("data") or {}).get("data") or "snapshot.parquet").name
    folder = store.download(data_run, "snapshot", workdir / "data")
    snapshot = folder / name
    if not snapshot.is_file():
        raise TrackingError(f"The recorded data snapshot {name} is missing from run {data_run}.")
    return snapshot


def unrestored_inputs(root: Path, project: Path, record: dict[str, Any]) -> list[str]:
    """Files of the project at ``root`` that the rebuild in ``project`` lacks: neither
    in the commit (git-ignored or untracked) nor a product of the recorded build, nor
    nbops' or Python's own. A build that read one of them cannot be restored exactly."""
    listed = set()
    for extra in ([], ["--ignored"]):
        done = subprocess.run(
            ["git", "ls-files", "--others", "--exclude-standard", *extra],
            cwd=root,
            capture_output=True,
            text=True,
        )
        listed.update(line for line in done.stdout.splitlines() if line.strip())
    products = []
    for task in record.get("tasks") or []:
        for path in (task.get("products") or {}).values():
            with contextlib.suppress(ValueError):
                products.append(Path(path).resolve().relative_to(root.resolve()))
    folders = {p.parent for p in products if p.parent != Path(".")}
    out = []
    for name in sorted(listed):
        rel = Path(name)
        if (
            rel in products
            or any(folder in rel.parents for folder in folders)
            or any(part.startswith(".") or part == "__pycache__" for part in rel.parts)
            or rel.suffix in (".pyc", ".lock")
            or rel.name in ("pipeline.yaml", "env.yaml")
            or (project / rel).exists()
        ):
            continue
        out.append(name)
    return out


def _build(project: Path, command: list[str], snapshot: Path | None, log: Path) -> bool:
    """Rebuild with the recorded command's spec and ``--env--`` overrides; the data
    source is the restored snapshot when there is one."""
    args, skip = [], False
    for i, arg in enumerate(command):
        if skip:
            skip = False
            continue
        if arg in ("-e", "--entry-point") or (arg.startswith("--env--") and "=" not in arg):
            if arg != "--env--data--source" or snapshot is None:
                args += [arg, command[i + 1]] if i + 1 < len(command) else []
            skip = True
        elif arg.startswith("--env--") and (
            snapshot is None or not arg.startswith("--env--data--source=")
        ):
            args.append(arg)
    if snapshot is not None:
        args += ["--env--data--source", str(snapshot)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBOPS_", "MLFLOW_", "CI"))}
    env.update(PLOOMBER_STATS_ENABLED="false", NBOPS_TRIGGER="reproduce")
    ploomber = Path(sys.executable).parent / "ploomber"
    with log.open("w") as out:
        done = subprocess.run(
            [str(ploomber), "build", "--force", *args],
            cwd=project,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    return done.returncode == 0


def _task_metrics(record: dict[str, Any]) -> dict[str, float]:
    out = {}
    for task in record.get("tasks", []):
        if task.get("status") != "executed":
            continue
        for key, value in (task.get("metrics") or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[f"{task['name']}.{key}"] = float(value)
    return out


def _compare(store: Any, record: dict[str, Any], project: Path, result: Reproduction) -> None:
    from nbops.tracking.store import Store

    again = Store(project)
    run = again.resolve("latest")
    result.reproduced_run_id = run.info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        new = json.loads(again.download(run.info.run_id, "record.json", Path(tmp)).read_text())
    result.data_recorded = (record.get("data") or {}).get("content_hash")
    result.data_reproduced = (new.get("data") or {}).get("content_hash")
    result.checks = compare_metrics(
        _task_metrics(record), _task_metrics(new), tolerance=result.tolerance
    )


def _package_changes(store: Any, run_id: str, workdir: Path) -> list[str]:
    from nbops.tracking.lineage import freeze

    try:
        recorded_file = store.download(run_id, "environment/requirements.txt", workdir / "env")
    except Exception:
        return []
    recorded = dict(_pin(line) for line in recorded_file.read_text().splitlines() if "==" in line)
    current = dict(_pin(line) for line in freeze() if "==" in line)
    return [
        f"{name}: {recorded.get(name, 'absent')} recorded, {current.get(name, 'absent')} now"
        for name in sorted(set(recorded) | set(current))
        if recorded.get(name) != current.get(name)
    ]


def _pin(line: str) -> tuple[str, str]:
    name, _, version = line.partition("==")
    return name.strip().lower(), version.strip()
