"""The ``nbops`` command line. Thin: parse, call one library function, print, exit.

Heavy libraries are imported inside the commands so ``nbops --help`` is instant.
Known errors (:class:`nbops.errors.NbopsError`) print as one paragraph and exit 1; the
traceback appears only with ``--verbose``.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any

import click

from nbops import __version__
from nbops.errors import NbopsError, ReleaseError


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NbopsError as exc:
            if ctx.find_root().params.get("verbose"):
                traceback.print_exc()
            click.secho(f"Error: {exc}", fg="red", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nbops")
@click.option("--verbose", "-v", is_flag=True, help="Show full tracebacks on errors.")
def main(verbose: bool) -> None:
    """nbops: notebooks to production ML with a paper trail.

    \b
    Typical use:
      make build                      run the pipeline (ploomber build)
      nbops schema infer data.csv     draft a data contract for your data
      nbops data generate out.parquet make a churn-like dataset to play with
    """


@main.group()
def schema() -> None:
    """Data contracts (pandera schemas kept as YAML in the repo)."""


@schema.command("infer")
@click.argument("data")
@click.option(
    "--rows", default=5_000, show_default=True, help="Rows to generate when DATA is 'bundled'."
)
@click.option(
    "--target",
    default=None,
    help="The column of labels (data.target): typed as the pipeline's ingest types it (yes/no text kept as written).",
)
def schema_infer(data: str, rows: int, target: str | None) -> None:
    """Print a draft schema for DATA (a .csv/.parquet file or 'bundled') as YAML.

    \b
    Example:
      nbops schema infer data/customers.csv --target Churn > schema/customers.yaml
    Then review and edit the file, commit it, and point env.yaml's schema at it.
    """
    from nbops.data import datasets
    from nbops.data.schema import infer_schema, schema_to_yaml
    from nbops.data.sources import BUNDLED, read_table

    if rows < 1:
        raise click.BadParameter("must be at least 1", param_hint="--rows")
    frame = datasets.make_churn(rows) if data == BUNDLED else read_table(data, target=target).frame
    if target is not None and target not in frame.columns:
        raise click.BadParameter(
            f"'{target}' is not a column of {data}; its columns: {', '.join(map(str, frame.columns))}.",
            param_hint="--target",
        )
    click.echo(schema_to_yaml(infer_schema(frame), source=data), nl=False)


@main.group()
def data() -> None:
    """Datasets."""


@data.command("generate")
@click.argument("out", type=click.Path(dir_okay=False))
@click.option(
    "--rows", default=10_000, show_default=True, help="Number of rows (10 to 10 million and more)."
)
@click.option("--seed", default=42, show_default=True, help="Random seed; same seed, same rows.")
@click.option(
    "--drift",
    default=0.0,
    show_default=True,
    help="0 = reference world; 1 = strongly shifted inputs and labels.",
)
def data_generate(out: str, rows: int, seed: int, drift: float) -> None:
    """Write the bundled churn-like dataset to OUT (.parquet or .csv), streamed in blocks.

    \b
    Example:
      nbops data generate data/churn-drifted.parquet --rows 100000 --drift 0.5
    """
    from nbops.data import datasets

    if rows < 1:
        raise click.BadParameter("must be at least 1", param_hint="--rows")
    if drift < 0:
        raise click.BadParameter("must be 0 or more", param_hint="--drift")
    path = datasets.write_churn(out, rows, seed=seed, drift=drift)
    click.echo(f"Wrote {rows:,} rows to {path}")


def _project_root() -> Path:
    from nbops.project import project_root

    return project_root()


def _store() -> Any:
    from nbops.tracking.store import Store, require_reachable

    root = _project_root()
    require_reachable(root)
    return Store(root)


@main.group()
def runs() -> None:
    """Review recorded builds (the MLflow store in .nbops/ or MLFLOW_TRACKING_URI)."""


@runs.command("list")
@click.option("--limit", "-n", default=20, show_default=True, help="How many of the latest builds.")
def runs_list(limit: int) -> None:
    """List the latest builds: run id, time, trigger, status, commit, data hash, metrics.

    \b
    Example:
      nbops runs list -n 50
    """
    from nbops.commands.review import list_runs
    from nbops.tracking.store import embedded_builds

    root = _project_root()
    # The embedded store is read directly (no MLflow import): the command stays fast.
    click.echo(
        list_runs(root if embedded_builds(root, limit=1) is not None else _store(), limit=limit)
    )


@runs.command("show")
@click.argument("run", default="latest")
def runs_show(run: str) -> None:
    """Show one build's full lineage. RUN is a run id, a prefix of one, latest or latest~N.

    \b
    Example:
      nbops runs show latest~1
    """
    from nbops.commands.review import show_run

    click.echo(show_run(_store(), run))


@runs.command("diff")
@click.argument("run_a")
@click.argument("run_b", default="latest")
def runs_diff(run_a: str, run_b: str) -> None:
    """Compare two builds: commits, data, task parameters (grid values too), env values,
    every task's sources and product hashes, metrics per task, and the notebook cells
    whose outputs changed.

    \b
    Example:
      nbops runs diff latest~1 latest
    """
    from nbops.commands.review import diff_runs

    click.echo(diff_runs(_store(), run_a, run_b))


@main.command("report")
@click.option(
    "--out",
    default="nbops-report",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder to write the site to.",
)
@click.option("--limit", "-n", default=50, show_default=True, help="How many of the latest builds.")
def report(out: str, limit: int) -> None:
    """Write a static site of recorded builds and their HTML reports, browsable offline.

    \b
    Example:
      nbops report --out site && xdg-open site/index.html
    """
    from nbops.commands.review import write_site

    index = write_site(_store(), Path(out), limit=limit)
    click.echo(f"Wrote {index}")


@main.command("reproduce")
@click.argument("run", default="latest")
@click.option(
    "--tolerance",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Relative difference allowed per metric (0: exact).",
)
@click.option("--keep", is_flag=True, help="Keep the worktree and the rebuilt products.")
def reproduce_cmd(run: str, tolerance: float, keep: bool) -> None:
    """Rebuild a recorded build from its commit, data snapshot (when one was recorded;
    else the inputs the commit has, naming those it cannot restore) and parameters, and
    compare the results metric by metric. RUN is a run id, a prefix, latest or latest~N.

    Exits 0 when the build reproduces, 1 when it does not (or recorded no metrics to
    compare), 2 when it cannot be tried.
    The rebuild runs in a temporary git worktree with a store of its own: the project's
    store and registry are not touched.

    \b
    Example:
      nbops reproduce latest~1
      nbops reproduce 3f2a9c --tolerance 1e-9
    """
    from nbops.commands.reproduce import reproduce

    click.echo(f"Rebuilding {run} (a full build; this takes as long as the original)...")
    try:
        result = reproduce(_store(), _project_root(), run, tolerance=tolerance, keep=keep)
    except NbopsError as exc:
        click.secho(f"Error: {exc}", fg="red", err=True)
        sys.exit(2)
    click.echo(result.render())
    sys.exit(0 if result.matches else 1)


@main.command("sync")
def sync() -> None:
    """Publish build records spooled while the tracking store was unreachable.

    \b
    Example:
      MLFLOW_TRACKING_URI=http://mlflow.internal:5000 nbops sync
    """
    from nbops.release.prepare import release_build
    from nbops.tracking.publish import spool_dir
    from nbops.tracking.publish import sync as sync_records

    root = _project_root()
    done = sync_records(root, release=release_build)
    if not done:
        click.echo(f"Nothing to sync: no spooled records in {spool_dir(root)}.")
    for build_id, run_id in done:
        click.echo(f"Published build {build_id[:12]} as run {run_id}.")


def _registry() -> Any:
    from nbops.tracking.registry import Registry

    return Registry(_project_root(), store=_store())


def _model_name(explicit: str | None = None) -> str:
    """The model a command works on: the option, NBOPS_MODEL, then env.yaml's release.model_name."""
    from nbops.project import model_name

    return model_name(explicit, root=_project_root())  # type: ignore[return-value]


@main.command("models")
@click.argument("name", required=False)
@click.option("--all", "every", is_flag=True, help="List every registered model.")
def models(name: str | None, every: bool) -> None:
    """List a registered model's versions: aliases (champion, challenger, previous), key
    metric, gate decision, build run, and the latest audit entries (who, when, why).

    NAME defaults to NBOPS_MODEL, then the project's release.model_name (env.yaml); out
    of a project, or with --all, every registered model is listed.

    \b
    Example:
      nbops models
      nbops models --all
    """
    from nbops.project import model_name
    from nbops.tracking.registry import describe_models

    only = None if every else model_name(name, root=_project_root(), required=False)
    click.echo(describe_models(_registry(), names=[only] if only else None))


@main.command("promote")
@click.argument("args", nargs=-1, required=True, metavar="[NAME] VERSION")
@click.option("--reason", required=True, help="Why: recorded in the audit trail.")
def promote(args: tuple[str, ...], reason: str) -> None:
    """Approve VERSION of model NAME as champion (the current champion becomes previous).

    NAME defaults to NBOPS_MODEL, then the project's release.model_name (env.yaml).

    \b
    Example:
      nbops promote 7 --reason "Reviewed gate report of build 3f2a; slices OK"
      nbops promote churn 7 --reason "..."
    """
    if len(args) > 2:
        raise click.UsageError(
            "Give at most a model name and a version: nbops promote [NAME] VERSION."
        )
    name = _model_name(args[0] if len(args) == 2 else None)
    version = args[-1]
    changes = _registry().promote(name, version.lstrip("v"), reason=reason)
    click.echo(f"{name}: " + ", ".join(changes))


@main.command("rollback")
@click.argument("name", required=False)
@click.option("--reason", required=True, help="Why: recorded in the audit trail.")
def rollback(name: str | None, reason: str) -> None:
    """Bring back the previous champion of model NAME.

    NAME defaults to NBOPS_MODEL, then the project's release.model_name (env.yaml).

    \b
    Example:
      nbops rollback --reason "Conversion dropped after release v8"
    """
    name = _model_name(name)
    changes = _registry().rollback(name, reason=reason)
    click.echo(f"{name}: " + ", ".join(changes))


def _require_served(name: str, alias: str) -> None:
    registry = _registry()
    if registry.alias(name, alias) is not None:
        return
    registered = registry.models()
    if name not in registered:
        raise ReleaseError(
            f"There is no registered model '{name}' to serve (registered: {', '.join(registered) or 'none yet'}). "
            "A build whose gate passes registers it: run `make build` in the project and read "
            "products/gate.html (in a project of your own, a notebook calls "
            "`nbops.log_model(model, X_test.head(5), test=(X_test, y_test))` and `ploomber build` "
            "registers it); or name another model with --model or NBOPS_MODEL."
        )
    raise ReleaseError(
        f"Model '{name}' has no {alias} to serve: no build has passed the gate yet. See "
        f"`nbops models {name}` and products/gate.html for why, or approve a version with "
        f"`nbops promote {name} VERSION --reason ...`."
    )


@main.command("serve")
@click.option(
    "--model",
    default=None,
    help="Registered model name (default: NBOPS_MODEL, then env.yaml's release.model_name).",
)
@click.option("--alias", default=None, help="Alias to serve (default: champion).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    help="Worker processes (one per core serves the most rows on a machine of its own; "
    "each loads the model, writes to the same log and counts its own /metrics).",
)
@click.option(
    "--canary",
    type=float,
    default=None,
    help="Share of traffic (0-1) for the challenger, sticky by the X-Routing-Key header.",
)
@click.option(
    "--shadow",
    is_flag=True,
    default=None,
    help="Also score every request with the challenger and log it; answer with the champion.",
)
def serve(
    model: str | None,
    alias: str | None,
    host: str,
    port: int,
    workers: int,
    canary: float | None,
    shadow: bool | None,
) -> None:
    """Serve the registry's champion over HTTP (POST /predict, /feedback; GET /health,
    /ready, /model, /metrics). Set NBOPS_API_TOKEN to require a bearer token.

    \b
    Example:
      nbops serve --port 8000 &
      curl -s localhost:8000/predict -d '{"records": [{...}]}'
    """
    import os

    import uvicorn

    from nbops.project import model_name
    from nbops.serving.settings import Settings
    from nbops.tracking.redact import display_url

    root = _project_root()
    # An adopted project names no model in env.yaml: nbops.log_model registers it under
    # the project folder's name, so that is the default here too.
    name = model_name(model, root=root, required=False) or root.name
    settings = Settings.from_env(root=root, model=name, alias=alias, canary=canary, shadow=shadow)
    # A missing model or alias is found here, as one paragraph, rather than as a
    # traceback from inside uvicorn's startup.
    _require_served(settings.model, settings.alias)
    os.environ.update(settings.env_for_workers())
    click.echo(
        f"Serving {settings.model}@{settings.alias} on http://{host}:{port} (log: {display_url(settings.prediction_log_url)})",
        err=True,
    )
    try:
        uvicorn.run(
            "nbops.serving.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            # At the warning level the access log prints nothing, but uvicorn still
            # formats each request's client and path for it.
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    except SystemExit as exc:
        if exc.code in (0, None):
            raise
        # uvicorn exits 3 when the app fails to start; its log above says why.
        raise NbopsError(
            f"The service for {settings.model}@{settings.alias} did not start on {host}:{port} "
            "(the reason is logged above; a port in use or a model that cannot be loaded). "
            "Fix it and run `nbops serve` again."
        ) from exc


@main.command("score")
@click.argument("input", type=click.Path(dir_okay=True))
@click.option(
    "--out",
    "output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Where the scores go: .parquet (or .csv).",
)
@click.option(
    "--model",
    default=None,
    help="Registered model name (default: NBOPS_MODEL, then env.yaml's release.model_name).",
)
@click.option(
    "--alias",
    default="champion",
    show_default=True,
    help="Alias (champion, challenger, previous) or version number of the model.",
)
@click.option(
    "--chunk-rows",
    type=click.IntRange(min=1),
    default=None,
    help="Rows read, validated and scored at a time (default 262,144): bounds memory.",
)
@click.option(
    "--max-bad-rows",
    type=click.IntRange(min=0),
    default=None,
    help="Stop, writing no output, when more rows than this are rejected (default: no limit).",
)
@click.option(
    "--rejects",
    default=None,
    type=click.Path(dir_okay=False),
    help="Where rejected rows go (default: OUTPUT's name with .rejects.csv).",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="tcp://HOST:PORT",
    help="Run on this dask.distributed cluster (Parquet input; workers need nbops and the "
    "same paths).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Threads scoring chunks side by side (default: one per core, at most 4).",
)
def score(
    input: str,
    output: str,
    model: str | None,
    alias: str,
    chunk_rows: int | None,
    max_bad_rows: int | None,
    rejects: str | None,
    scheduler: str | None,
    workers: int | None,
) -> None:
    """Score the rows of INPUT (.csv or .parquet) with a registered model into OUTPUT.

    Rows are typed and validated as the prediction service does (text as in the training
    file is read the same way); each output row has the input's ID columns, the
    prediction, the class probabilities, the model name and version and the scoring
    time, in input order. Rejected rows go to a rejects file with their row number and
    reasons. The job is recorded as a run (see `nbops runs list`), with a report
    (OUTPUT's name with .report.html) made by the project's notebooks/score/report.ipynb.

    \b
    Example:
      nbops score data/customers.csv --out scores/customers.parquet
      nbops score new.parquet --out scores.csv --alias 7 --max-bad-rows 100
      nbops score big.parquet --out scores.parquet --scheduler tcp://10.0.0.5:8786
    """
    import time

    from nbops.build.startup import exit_at_once, exit_without_collecting
    from nbops.commands.score import score_file

    # The process ends after the job: the objects it imported (MLflow, Jupyter's client,
    # pandas) are left to the system rather than walked by a last collection (about
    # 0.5 CPU s, seconds of wall time on a busy machine).
    exit_without_collecting(programs=None)
    root = _project_root()
    shown = [time.monotonic()]

    def progress(rows: int, rejected: int) -> None:
        if time.monotonic() - shown[0] >= 5:  # a line every few seconds on long jobs
            shown[0] = time.monotonic()
            click.echo(f"  {rows:,} rows read, {rejected:,} rejected", err=True)

    result = score_file(
        root,
        input,
        output,
        model_name=_model_name(model),
        alias=alias,
        chunk_rows=chunk_rows,
        max_bad_rows=max_bad_rows,
        rejects=rejects,
        command=["nbops", *sys.argv[1:]],
        progress=progress,
        scheduler=scheduler,
        workers=workers,
    )
    rate = result.rows / result.seconds if result.seconds else 0.0
    click.echo(
        f"Scored {result.scored:,} of {result.rows:,} rows with {result.model_name} "
        f"v{result.model_version} ({result.scorer}) into {result.output} in "
        f"{result.seconds:.1f} s ({rate:,.0f} rows/s)."
    )
    if result.predictions:
        click.echo(
            "Predictions: "
            + ", ".join(f"{label} {share:.1%}" for label, share in result.predictions.items())
            if "mean" not in result.predictions
            else f"Mean prediction: {result.predictions['mean']:.6g}"
        )
    if result.drift:
        drift = result.drift
        tested = [c for c in drift["columns"] if c["drifted"] is not None]
        click.echo(
            f"Drift against the training profile ({drift['n_current']:,} sampled rows): "
            f"{len(drift['drifted_columns'])} of {len(tested)} columns"
            + (f" ({', '.join(drift['drifted_columns'])})" if drift["drifted_columns"] else "")
            + (f"; predictions {drift['prediction']['status']}" if drift.get("prediction") else "")
            + "."
        )
    if result.rejected:
        click.secho(
            f"Rejected {result.rejected:,} rows (row number and reasons in {result.rejects}).",
            fg="yellow",
        )
    if result.report:
        click.echo(f"Report: {result.report}")
    elif result.report_note:
        click.secho(result.report_note, fg="yellow")
    if result.run.get("run_id"):
        click.echo(f"Recorded as run {result.run['run_id'][:12]} (nbops runs show).")
    # Everything is written, renamed and recorded: the `nbops score` process ends here,
    # without Python's exit (0.25 s of CPU; see exit_at_once).
    exit_at_once()


@main.command("monitor")
@click.option(
    "--window",
    default=None,
    help="How far back to read the prediction log: 90m, 24h, 7d, 2w (default: env.yaml, 7d).",
)
@click.option(
    "--since", default=None, help="Start of the window as an ISO date/time (wins over --window)."
)
@click.option(
    "--data",
    "data",
    default=None,
    type=click.Path(dir_okay=False),
    help="Monitor a batch file (CSV/Parquet) instead of the log.",
)
@click.option(
    "--alias",
    default=None,
    help="Registry alias of the watched model (default: env.yaml, champion).",
)
@click.option(
    "--model",
    default=None,
    help="Registered model name (default: NBOPS_MODEL, then env.yaml's release.model_name).",
)
@click.option(
    "--retrain",
    is_flag=True,
    help="On a breach, run a training build tagged trigger=drift; the gate judges it.",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Score and count a Parquet --data file on this dask.distributed scheduler "
    "(tcp://HOST:PORT), a part per task; the same figures as on this machine.",
)
@click.option(
    "--chunk-rows",
    type=int,
    default=None,
    help="Rows per part of the --data file (default 262,144; Parquet row groups are joined up to it).",
)
def monitor(
    window: str | None,
    since: str | None,
    data: str | None,
    alias: str | None,
    model: str | None,
    retrain: bool,
    scheduler: str | None,
    chunk_rows: int | None,
) -> None:
    """Compare recent traffic (or a batch file) with the serving model's training data.

    Runs the monitoring pipeline (pipeline.monitor.yaml) as a recorded run with HTML
    reports in products/monitor/, prints a summary, and exits 0 when all is clear,
    1 when a threshold in env.yaml's monitor.alerts is crossed, 2 when monitoring
    itself failed.

    \b
    Examples:
      nbops monitor --window 24h
      nbops monitor --data new_customers.parquet
      nbops monitor --data big.parquet --scheduler tcp://dask:8786
      nbops monitor --window 7d --retrain      # in a daily scheduled job
    """
    from nbops.monitoring.watch import retrain as retrain_model
    from nbops.monitoring.watch import run_monitoring

    root = _project_root()
    try:
        run = run_monitoring(
            root,
            window=window,
            since=since,
            data=data,
            alias=alias,
            model_name=_model_name(model),
            scheduler=scheduler,
            chunk_rows=chunk_rows,
        )
    except NbopsError as exc:  # exit 1 means "threshold crossed": a failure is 2
        click.secho(f"Error: {exc}", fg="red", err=True)
        sys.exit(2)
    if not run.ok:
        click.echo(run.output, err=True)
        click.secho(
            "Error: the monitoring build failed (see above; the partial notebooks are in products/monitor/).",
            fg="red",
            err=True,
        )
        sys.exit(2)
    decision, drift = run.decision, run.drift
    w = decision["window"]
    click.echo(
        f"{decision['model_name']} v{decision['serving_version']}: {w['rows']:,} rows from {w['requests']:,} requests "
        f"({w['source']}{', since ' + w['start'] if w.get('start') else ''}); {w['labelled_rows']:,} labelled"
    )
    columns = [*drift["columns"], *([drift["prediction"]] if drift.get("prediction") else [])]
    click.echo(f"  {'COLUMN':24} {'TEST':14} {'VALUE':>10} {'LIMIT':>7}  STATUS")
    for c in sorted(
        columns, key=lambda c: (c["status"] != "drift", c["status"] != "ok", c["column"])
    ):
        value = "-" if c["statistic"] is None else f"{c['statistic']:.4g}"
        limit = "-" if c["threshold"] is None else f"{c['threshold']:g}"
        click.echo(
            f"  {c['column'][:24]:24} {(c['method'] or '-'):14} {value:>10} {limit:>7}  {c['status']}"
        )
    click.echo("  reports: products/monitor/*.html")
    if not decision["breached"]:
        click.secho("All clear: no threshold crossed.", fg="green")
        return
    for reason in decision["reasons"]:
        click.secho(f"ALERT: {reason}", fg="red")
    if retrain:
        click.echo("Retraining (trigger=drift): ploomber build ...")
        code, gate = retrain_model(root)
        if code != 0:
            click.secho(
                "Error: the retraining build failed; see its output above.", fg="red", err=True
            )
            sys.exit(2)
        if gate:
            click.echo(f"Gate: {gate.action.upper()} — {gate.summary}")
    sys.exit(1)


@main.group("export")
def export_group() -> None:
    """Run the pipeline on a scheduler: one scheduler task per Ploomber task."""


def _export_options(default_out: str) -> Any:
    options = [
        click.option(
            "--out",
            default=default_out,
            show_default=True,
            type=click.Path(file_okay=False),
            help="Folder to write the file to.",
        ),
        click.option(
            "--schedule",
            default=None,
            help="A schedule such as @daily or '0 3 * * *' (default: manual runs only).",
        ),
        click.option(
            "--dag-id",
            default=None,
            help="The workflow's name (default: env.yaml's release.model_name).",
        ),
        click.option(
            "--retries", default=0, show_default=True, help="Retries of each task on failure."
        ),
        click.option(
            "--project-dir",
            default=None,
            help="Where the project is on the workers (default: this project's folder).",
        ),
        click.option(
            "--ploomber",
            default=None,
            help="How the workers start Ploomber: a path or a command prefix such as "
            "'conda run -n churn ploomber' (default: the ploomber of this environment).",
        ),
        click.option(
            "--max-active-tasks",
            default=1,
            show_default=True,
            help="Tasks running at once; 1 runs them in order, like ploomber build.",
        ),
    ]

    def decorate(function: Any) -> Any:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


def _export(fmt: str, options: dict[str, Any]) -> list[Path]:
    from nbops.commands.export import ExportOptions, ScoreOptions, export

    out = Path(options.pop("out"))
    image = options.pop("image", "nbops:latest")
    score = None
    if fmt == "airflow":
        score = ScoreOptions(
            input=options.pop("score_input"),
            output=options.pop("score_output"),
            schedule=options.pop("score_schedule"),
            nbops=options.pop("nbops"),
        )
    settings = ExportOptions(name=options.pop("dag_id"), **options)
    return export(_project_root(), fmt, out=out, options=settings, image=image, score=score)


@export_group.command("airflow")
@_export_options("dist/airflow")
@click.option(
    "--score-input",
    default="data/score.parquet",
    show_default=True,
    help="Scoring DAG: the default of its input param, the file to score.",
)
@click.option(
    "--score-output",
    default="scores/score.parquet",
    show_default=True,
    help="Scoring DAG: the default of its output param, where the scores go.",
)
@click.option(
    "--score-schedule",
    default=None,
    help="Scoring DAG: a schedule such as @daily (default: manual runs only).",
)
@click.option(
    "--nbops",
    default=None,
    help="How the workers start nbops (default: beside --ploomber's ploomber).",
)
def export_airflow(**options: Any) -> None:
    """Write the pipeline as an Apache Airflow 3 DAG file (OUT/<dag-id>.py), and a
    batch-scoring DAG (OUT/<dag-id>_score.py).

    Each Ploomber task becomes a task running `ploomber build --partially TASK
    --skip-upstream` in the project folder (a run record each); a last task,
    nbops-record, runs `ploomber build`, which finds everything up to date and records
    the whole pipeline as one run. The scoring DAG runs `nbops score INPUT --out OUTPUT`
    with the registry's champion; INPUT and OUTPUT are its params, used as typed.

    \b
    Example:
      nbops export airflow --out ~/airflow/dags --schedule @daily
      nbops export airflow --score-input incoming/customers.parquet --score-schedule @daily
    """
    for path in _export("airflow", options):
        click.echo(f"Wrote {path}")


@export_group.command("argo")
@_export_options("dist/argo")
@click.option(
    "--image", default="nbops:latest", show_default=True, help="Image with the project's env."
)
def export_argo(**options: Any) -> None:
    """Write the pipeline as an Argo Workflows manifest (OUT/<dag-id>.yaml; a CronWorkflow
    with --schedule). The pods mount the project from the volume claim nbops-project.

    \b
    Example:
      nbops export argo --image registry.internal/churn:1.4 --project-dir /project
    """
    for path in _export("argo", options):
        click.echo(f"Wrote {path}")


@main.command("adopt")
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.option(
    "--entry-point",
    "-e",
    default=None,
    help="The pipeline spec, relative to DIRECTORY (default: pipeline.yaml).",
)
def adopt(directory: str, entry_point: str | None) -> None:
    """Wire nbops into the existing Ploomber project in DIRECTORY (default: here).

    Adds one hook to pipeline.yaml (comments and order kept) so every `ploomber build`
    and `ploomber task` is recorded: each task's status, duration, parameters, source
    and product hashes, notebook and report. Your code, notebooks, products, executor
    and hooks stay as they are. Running it again changes nothing. To start a new
    project instead, use `nbops init`.

    \b
    Example:
      cd my-ploomber-project && nbops adopt
      ploomber build && nbops runs list
    """
    from nbops.commands.adopt import adopt_project

    result = adopt_project(directory, entry_point=entry_point)
    for change in result.changes:
        click.echo(change)


@main.command("init")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option(
    "--data",
    default=None,
    type=click.Path(dir_okay=False, exists=True),
    help="Your data: a CSV, TSV or Parquet file (copied into the project).",
)
@click.option("--target", default=None, help="The column to predict (required with --data).")
@click.option(
    "--task",
    type=click.Choice(["classification", "regression"]),
    default=None,
    help="Default: guessed from the target column.",
)
def init(directory: str, data: str | None, target: str | None, task: str | None) -> None:
    """Create a new project in DIRECTORY from the reference pipeline.

    With --data and --target it is set up for your data: a copy of the file, a data
    contract inferred from it (schema/, review it), env.yaml pointing at both. Without,
    it uses the bundled churn example.

    \b
    Example:
      nbops init churn-model --data customers.csv --target churned
      cd churn-model && make build
    """
    from nbops.commands.init import init_project

    dest = init_project(directory, data=data, target=target, task=task)
    click.echo(f"Created {dest}")
    click.echo(f"  next: cd {directory} && make build   (then review schema/ and env.yaml)")
