"""Real `ploomber build`s of a one-notebook project with the nbops hooks: secrets given
on the command line, in an uncommitted env.yaml and inside URLs reach no tag, param,
artifact, record, summary page or printed line; a build with ``NBOPS_TRACKING=off``
leaves no record anywhere."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import nbformat
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import BIN, build_env, free_port

pytestmark = pytest.mark.pipeline

#: Each secret reaches the build a different way; none may be recorded or printed.
ON_COMMAND_LINE = "cli-secret-Xq7Zr2"  # --env--db--password
IN_URL = "url-secret-Pk3Wd9"  # --env--warehouse--dsn postgresql://etl:...@db/wh
IN_DIFF = "diff-secret-Hs5Ny1"  # smtp: pw: in env.yaml, edited after the last commit
SECRETS = (ON_COMMAND_LINE, IN_URL, IN_DIFF)

PIPELINE = """\
on_finish: nbops.build.hooks.build_finished
on_failure: nbops.build.hooks.build_failed
tasks:
  - source: notebooks/report.ipynb
    name: report
    product:
      nb: products/report.ipynb
      html: products/report.html
    nb_product_key: [nb, html]
    nbconvert_exporter_name: {html: nbops.reports.ReportExporter}
    on_finish: nbops.build.hooks.task_finished
    on_failure: nbops.build.hooks.task_failed
    params:
      db_password: '{{db.password}}'
      dsn: '{{warehouse.dsn}}'
      rows: '{{rows}}'
"""

ENV = """\
rows: 3
db:
  password: placeholder
warehouse:
  dsn: sqlite:///warehouse.db
"""


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


def make_project(root: Path) -> Path:
    (root / "notebooks").mkdir(parents=True)
    (root / "pipeline.yaml").write_text(PIPELINE)
    (root / "env.yaml").write_text(ENV)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    params = nbformat.v4.new_code_cell(
        "upstream = None\nproduct = None\ndb_password = None\ndsn = None\nrows = 1"
    )
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A report that never prints its secrets"),
        params,
        nbformat.v4.new_code_cell("print('rows:', rows, 'password set:', bool(db_password))"),
    ]
    nbformat.write(nb, root / "notebooks" / "report.ipynb")
    (root / ".gitignore").write_text("products/\n.nbops/\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "initial: no secrets")
    return root


def build(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(BIN / "ploomber"), "build", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        env=build_env(**env),
    )
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def leaks(folder: Path) -> list[str]:
    return [
        f"{path.relative_to(folder)}: {secret}"
        for path in sorted(folder.rglob("*"))
        if path.is_file()
        for secret in SECRETS
        if secret.encode() in path.read_bytes()
    ]


def tree(folder: Path) -> dict[str, str]:
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def secret_build(tmp_path_factory: pytest.TempPathFactory):
    root = make_project(tmp_path_factory.mktemp("secrets") / "project")
    with (root / "env.yaml").open("a") as env:  # edited after the last commit
        env.write(f"smtp:\n  host: mail.example.com\n  pw: {IN_DIFF}\n")
    args = (
        "--env--db--password",
        ON_COMMAND_LINE,
        "--env--warehouse--dsn",
        f"postgresql://etl:{IN_URL}@db.example.com/warehouse",
    )
    result = build(root, *args)
    # Again with the store down: the record and its files go to the spool instead.
    down = f"http://etl:{IN_URL}@127.0.0.1:{free_port()}"
    spooled = build(root, "--force", *args, MLFLOW_TRACKING_URI=down)
    return root, result, spooled


def test_a_build_records_no_secret_anywhere(secret_build, tmp_path):
    root, result, spooled = secret_build
    client = MlflowClient(f"sqlite:///{root / '.nbops' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(root.name)
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("nbops.kind") == "build"]
    (child,) = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]

    # The build ran with the secrets, and the record says where they were hidden.
    assert "password set: True" in (root / "products" / "report.ipynb").read_text()
    tags, params = parent.data.tags, parent.data.params
    assert tags["git.dirty"] == "true"
    assert tags["nbops.command"] == (
        "ploomber build --env--db--password ***REDACTED*** --env--warehouse--dsn "
        "postgresql://etl:***REDACTED***@db.example.com/warehouse"
    )
    assert params["env.db.password"] == "***REDACTED***"
    assert (
        params["env.smtp.pw"] == "***REDACTED***" and params["env.smtp.host"] == "mail.example.com"
    )
    assert child.data.params["db_password"] == "***REDACTED***"
    assert child.data.params["dsn"] == "postgresql://etl:***REDACTED***@db.example.com/warehouse"

    # Every tag, param and artifact of both runs, the whole store folder, the summary page.
    texts = [str(r.data.tags) + str(r.data.params) for r in (parent, child)]
    assert not [s for s in SECRETS for t in texts if s in t]
    downloaded = tmp_path / "artifacts"
    for run in (parent, child):
        client.download_artifacts(run.info.run_id, "", str(downloaded / run.info.run_id))
    diff = (downloaded / parent.info.run_id / "git" / "diff.patch").read_text()
    assert "+  pw: ***REDACTED***" in diff and "+  host: mail.example.com" in diff
    assert {p.name for p in downloaded.rglob("*")} >= {"record.json", "summary.html", "report.html"}
    assert leaks(downloaded) == []
    (spool,) = (root / ".nbops" / "spool").iterdir()
    assert (spool / "record.json").is_file() and list(spool.rglob("report.html"))
    assert leaks(root / ".nbops") == [], "store, spooled record and its files"
    summary = (root / "products" / "index.html").read_bytes()
    assert b"report" in summary and not [s for s in SECRETS if s.encode() in summary]
    # And nothing printed.
    printed = result.stdout + result.stderr + spooled.stdout + spooled.stderr
    assert "nbops: recorded build as run" in printed and "run `nbops sync`" in printed
    assert not [s for s in SECRETS if s in printed]


def test_a_build_with_tracking_off_leaves_no_record(secret_build, tmp_path):
    root, *_ = secret_build
    before = tree(root / ".nbops")
    summary = (root / "products" / "index.html").read_bytes()

    result = build(root, "--force", NBOPS_TRACKING="off")

    assert "nbops:" not in result.stdout + result.stderr
    assert tree(root / ".nbops") == before, "no new run, spool entry or lineage change"
    assert (root / "products" / "index.html").read_bytes() == summary

    fresh = make_project(tmp_path / "fresh")
    build(fresh, NBOPS_TRACKING="off", MLFLOW_TRACKING_URI="")
    assert (fresh / "products" / "report.html").is_file(), "the build itself ran"
    assert not (fresh / ".nbops").exists()
    assert not (fresh / "products" / "index.html").exists()
