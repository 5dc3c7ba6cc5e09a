"""Releases: the MLflow Model Registry with aliases, approvals, rollback and an audit trail.

Each build's selected model is registered as a new version of a registered model (with
signature, input example, the data schema, a model card and a link to the build's run).
Aliases say which version plays which role:

- ``champion``: in production; ``nbops serve`` loads it;
- ``challenger``: passed the gate under ``release.policy: manual``, awaiting approval;
- ``previous``: the champion before the current one; ``nbops rollback`` restores it.

MLflow keeps no history of aliases, so every change is also written to an append-only
audit trail: one run per change in the ``nbops-audit`` experiment (who, when, why, which
version, from which build run) plus tags on the version. Changes take a lock so two
processes promoting at once leave the aliases consistent.

Models are stored with skops and loading by alias checks the recorded SHA-256. skops
builds objects by calling the classes a file names, so what a file may name decides
what loading can run: a model trusts an exact list of classes, recorded when it was
saved inside ``model.skops`` itself (so the registered hash covers it) and intersected
with nbops' own exact allow-list (:data:`TRUSTED_CLASSES`). Never a module prefix:
``numpy.`` would trust ``numpy.testing``'s ``runstring``, which executes a string.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbops._compat import legacy_names
from nbops.errors import ReleaseError
from nbops.hashing import bytes_sha256, file_sha256
from nbops.tracking.store import Store, local_store_dir

__all__ = [
    "AUDIT_EXPERIMENT",
    "ROLES",
    "TRUSTED_CLASSES",
    "TRUSTED_FUNCTIONS",
    "Registry",
    "actor",
    "alias_version",
    "embedded_files",
    "embedded_member",
    "load_embedded",
    "load_skops",
    "load_version",
    "model_sha256",
    "save_release_model",
    "version_files",
]

AUDIT_EXPERIMENT = "nbops-audit"
ROLES = ("champion", "challenger", "previous")
MODEL_FILE = "model.skops"
#: The classes a model may name besides skops' own safe set (which covers scikit-learn's
#: public estimators): exact names of what nbops' model families and feature pipeline
#: hold, scikit-learn internals they need and numpy's dtype and array types.
# legacy_names adds each nbops name as 0.1 spelled it (nbops.features.DatetimeFeatures):
# models saved by 0.1 name their types so, and those names still import (nbops._compat).
TRUSTED_CLASSES = legacy_names(
    {
        "nbops.modeling.features.DatetimeFeatures",
        "numpy.dtype",
        "numpy.ndarray",
        "numpy.ma.MaskedArray",
        "numpy.bool",
        "numpy.bool_",
        "numpy.float32",
        "numpy.float64",
        "numpy.int32",
        "numpy.int64",
        "numpy.str_",
        "sklearn.compose._column_transformer.ColumnTransformer",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.impute._base.SimpleImputer",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.linear_model._ridge.Ridge",
        # TargetEncoder keeps its cross-fitting splitter (plain data: folds, seed)
        "sklearn.model_selection._split.KFold",
        "sklearn.model_selection._split.StratifiedKFold",
        "sklearn.pipeline.Pipeline",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._encoders.OneHotEncoder",
        "sklearn.preprocessing._function_transformer.FunctionTransformer",
        "sklearn.preprocessing._target_encoder.TargetEncoder",
    }
)
#: Functions a model may refer to (the ``func`` of the feature pipeline's
#: FunctionTransformers): only as a reference, which skops fetches and never calls.
TRUSTED_FUNCTIONS = legacy_names(
    {"nbops.modeling.features._to_float", "nbops.modeling.features._to_text"}
)
#: The member of ``model.skops`` recording, at save time, the types the model holds.
TRUST_RECORD = "nbops-trusted-types.json"
#: The skops loader that fetches a function without calling it.
_REFERENCE = "FunctionNode"


#: What this module imports inside its functions (MLflow's client, stores and sklearn
#: flavor, skops: about 5 s of CPU): a build's kernel template imports them once for
#: every notebook that imports this module (:mod:`nbops.build.forks`).
__warm_imports__ = (
    "mlflow.tracking",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "mlflow.models",
    "mlflow.sklearn",
    "skops.io",
)


def actor() -> str:
    """Who is acting: ``NBOPS_ACTOR``, else CI's user (``GITHUB_ACTOR``), else the OS user."""
    for var in ("NBOPS_ACTOR", "GITHUB_ACTOR"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def model_sha256(model_dir: str | Path) -> str:
    return file_sha256(Path(model_dir, MODEL_FILE))


def save_release_model(
    model: Any,
    path: str | Path,
    *,
    input_example: Any,
    pip_requirements: list[str],
    extra_files: dict[str, str] | None = None,
    members: dict[str, bytes] | None = None,
) -> dict[str, Any]:
    """Save ``model`` as an MLflow model folder with skops, a signature and an input example.

    The types the model holds beyond skops' safe set must be on nbops' exact allow-list
    (anything else is refused); they are recorded inside ``model.skops`` so loading
    trusts exactly them, and the file's hash covers the record. ``members`` are more
    files written inside ``model.skops`` (skops ignores them), covered by the same hash:
    e.g. the compiled scorer (:mod:`nbops.serving.stored`), read by
    :func:`embedded_member` without skops.
    """
    import mlflow.sklearn
    import skops.io as sio
    from mlflow.models import infer_signature

    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    dumped = sio.dumps(model)
    untrusted = sio.get_untrusted_types(data=dumped)
    foreign = _refused(_schema(zipfile.ZipFile(io.BytesIO(dumped))), untrusted, recorded=None)
    if foreign:
        raise ReleaseError(
            f"The model contains types nbops will not trust on load: {', '.join(foreign)}. Use scikit-learn estimators and nbops' feature pipeline."
        )
    output = (
        model.predict_proba(input_example)
        if hasattr(model, "predict_proba")
        else model.predict(input_example)
    )
    started = time.perf_counter()
    with _no_requirement_scan():
        mlflow.sklearn.save_model(
            model,
            str(path),
            signature=infer_signature(input_example, output),
            input_example=input_example,
            pip_requirements=pip_requirements,
            serialization_format="skops",
            skops_trusted_types=untrusted,
        )
    with zipfile.ZipFile(path / MODEL_FILE, "a") as archive:
        archive.writestr(TRUST_RECORD, json.dumps({"trusted_types": sorted(untrusted)}))
        for member, data in (members or {}).items():
            archive.writestr(member, data)
    seconds = time.perf_counter() - started
    for name, file in (extra_files or {}).items():
        shutil.copyfile(file, path / name)
    return {
        "path": str(path),
        "sha256": model_sha256(path),
        "save_seconds": seconds,
        "trusted_types": untrusted,
    }


@contextlib.contextmanager
def _no_requirement_scan() -> Iterator[None]:
    """MLflow checks the model's pip requirements against the installed packages by
    mapping every file of every installed distribution to its package: 4.4 s of CPU per
    saved model here, most of the gate step at test sizes. nbops pins the requirements
    from the running environment (:func:`nbops.release.prepare.release_requirements`),
    so the check can only agree; it is skipped for this call. If MLflow moves the check,
    it simply runs again."""
    import mlflow.utils.environment as environment

    check = getattr(environment, "warn_dependency_requirement_mismatches", None)
    if check is None:
        yield
        return
    environment.warn_dependency_requirement_mismatches = lambda requirements: None
    try:
        yield
    finally:
        environment.warn_dependency_requirement_mismatches = check


def load_skops(path: str | Path) -> Any:
    """Load a skops file trusting exactly the types recorded in it at save time that are
    also on nbops' allow-list; a file naming anything else is refused before any of it
    is built. Files saved by nbops 0.1.0 record nothing: the allow-list alone decides."""
    import skops.io as sio

    try:
        with zipfile.ZipFile(path) as archive:
            schema = _schema(archive)
            recorded = (
                json.loads(archive.read(TRUST_RECORD))["trusted_types"]
                if TRUST_RECORD in archive.namelist()
                else None
            )
        untrusted = sio.get_untrusted_types(file=str(path))  # reads the schema, builds nothing
    except (zipfile.BadZipFile, KeyError, TypeError, ValueError) as exc:
        raise ReleaseError(
            f"Model file '{path}' is not a readable skops file ({type(exc).__name__}: {exc}). Re-register the model from its build."
        ) from exc
    refused = _refused(schema, untrusted, recorded=recorded)
    if refused:
        raise ReleaseError(
            f"Model file '{path}' contains types nbops does not trust: {', '.join(refused)}. "
            "Refusing to load it: nothing in it was run. The file may have been tampered with; "
            "re-register the model from its build."
        )
    return sio.load(str(path), trusted=untrusted)


def _schema(archive: zipfile.ZipFile) -> dict[str, Any]:
    return json.loads(archive.read("schema.json"))


def _uses(schema: Any) -> dict[str, set[str]]:
    """Every type the schema names, with the skops loaders that would build it."""
    found: dict[str, set[str]] = {}
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("__module__"), str) and isinstance(node.get("__class__"), str):
                name = f"{node['__module__']}.{node['__class__']}"
                found.setdefault(name, set()).add(str(node.get("__loader__")))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _refused(schema: Any, untrusted: list[str], *, recorded: list[str] | None) -> list[str]:
    """The types of ``untrusted`` nbops will not trust, each with the reason."""
    uses = _uses(schema)
    refused = []
    for name in sorted(untrusted):
        if name in TRUSTED_FUNCTIONS:
            if uses.get(name, set()) - {_REFERENCE}:
                refused.append(f"{name} (a function, called instead of referenced)")
        elif name not in TRUSTED_CLASSES:
            refused.append(f"{name} (not on nbops' list of model classes)")
        if recorded is not None and name not in recorded:
            refused.append(f"{name} (not recorded when the model was saved)")
    return refused


def _checked_load(local: Path, version: Version, role: str) -> Any:
    """The model in ``local`` (a private copy of a version's ``model.skops``), loaded
    with nbops' trusted types once its SHA-256 is the one recorded at registration.

    Raises:
        ReleaseError: the file is not the one registered.
    """
    _check_sha256(file_sha256(local), version, role)
    return load_skops(local)


def _check_sha256(actual: str, version: Version, role: str) -> None:
    recorded = version.tags.get("nbops.model_sha256")
    if recorded != actual:
        raise ReleaseError(
            f"Model '{version.name}' version {version.version} ({role}) does not match its recorded hash ({recorded} vs {actual}): refusing to load it. Re-register the model from its build."
        )


def load_version(
    root: Path, name: str, role: str, files: tuple[str, ...] = ()
) -> tuple[Version, Any, dict[str, str]]:
    """:meth:`Registry.load_with` for the project at ``root``: read without MLflow from
    the embedded store when it can be (:func:`load_embedded`), through MLflow otherwise."""
    found = load_embedded(root, name, role, files)
    return found if found is not None else Registry(root).load_with(name, role, files)


def alias_version(root: Path, name: str, alias: str) -> Version | None:
    """:meth:`Registry.alias` for the project at ``root``: the version holding ``alias``
    (None when none does), read without MLflow from the embedded store when it can be."""
    found = _embedded_version(root, name, alias)
    if found is not None and alias in found[0].aliases:
        return found[0]
    # Not there (no such alias: MLflow words nothing, the caller does), or not embedded.
    return Registry(root).alias(name, alias)


def version_files(root: Path, name: str, version: str, files: tuple[str, ...]) -> dict[str, str]:
    """:meth:`Registry.files` for the project at ``root``, without MLflow when it can be."""
    found = embedded_files(root, name, version, files)
    return found if found is not None else Registry(root).files(name, version, files)


def load_embedded(
    root: Path, name: str, role: str, files: tuple[str, ...] = ()
) -> tuple[Version, Any, dict[str, str]] | None:
    """:meth:`Registry.load_with` read straight from the project's embedded SQLite store
    and its artifact folder, without MLflow.

    Importing MLflow and opening its SQL store cost about 2 s of CPU, more than loading
    the model itself; a command that only reads one version (``nbops score``) needs
    neither. The model is checked and loaded exactly as :meth:`Registry.load` does (the
    recorded SHA-256 of a private copy, then skops with nbops' trusted types). Returns
    None when the store is not the project's embedded one, the version is not found, or
    anything is not in the expected shape: callers then use :class:`Registry`, which
    also words the errors.
    """
    found = _embedded_version(root, name, role)
    if found is None:
        return None
    version, folder = found
    texts = _texts(folder, files)
    with tempfile.TemporaryDirectory(prefix="nbops-model-") as tmp:
        # A private copy is hashed and loaded, as Registry.load does: the stored file
        # changing between the check and the load cannot slip past the check.
        local = Path(shutil.copyfile(folder / MODEL_FILE, Path(tmp) / MODEL_FILE))
        return version, _checked_load(local, version, role), texts


def embedded_member(
    root: Path, name: str, role: str, member: str, files: tuple[str, ...] = ()
) -> tuple[Version, bytes | None, dict[str, str]] | None:
    """One file stored inside the ``model.skops`` of the version holding ``role`` (see
    ``members`` of :func:`save_release_model`), from the embedded store without MLflow
    or skops: (the version, the member's bytes or None when the file has none, the
    texts of ``files``). None where :func:`load_embedded` gives None.

    The whole ``model.skops`` is read once into memory and its SHA-256 checked against
    the one recorded at registration before the member is taken from those same bytes,
    so the member is covered by the model's hash; nothing in it is run.

    Raises:
        ReleaseError: the file is not the one registered.
    """
    found = _embedded_version(root, name, role)
    if found is None:
        return None
    version, folder = found
    data = (folder / MODEL_FILE).read_bytes()
    _check_sha256(bytes_sha256(data), version, role)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            stored = archive.read(member) if member in archive.namelist() else None
    except (zipfile.BadZipFile, KeyError, ValueError):
        stored = None  # skops names the problem on the usual path
    return version, stored, _texts(folder, files)


def embedded_files(
    root: Path, name: str, version: str, files: tuple[str, ...]
) -> dict[str, str] | None:
    """:meth:`Registry.files` from the embedded store without MLflow (None: use it)."""
    found = _embedded_version(root, name, version)
    return None if found is None else _texts(found[1], files)


def _texts(folder: Path, files: tuple[str, ...]) -> dict[str, str]:
    return {f: (folder / f).read_text() for f in files if (folder / f).is_file()}


def _embedded_version(root: Path, name: str, role: str) -> tuple[Version, Path] | None:
    """The version holding ``role`` (an alias or a number) and its local model folder,
    from MLflow's long-stable registry tables (model_versions, their tags and aliases),
    read-only; None when it is not there in the expected shape."""
    import sqlite3
    from urllib.parse import unquote, urlparse

    from nbops.tracking.store import read_only_connection, tracking_uri, tracking_uri_embedded

    if tracking_uri(root) != tracking_uri_embedded(root):
        return None
    path = local_store_dir(root) / "mlflow.db"
    if not path.is_file():
        return None
    try:
        with contextlib.closing(read_only_connection(path)) as db:
            number = role.lstrip("v")
            aliased = db.execute(
                "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?",
                (name, role),
            ).fetchall()
            if len(aliased) > 1:  # one per workspace: MLflow decides which
                return None
            if aliased:
                number = str(aliased[0][0])
            elif not number.isdigit():
                return None
            found = db.execute(
                "SELECT version, creation_time, run_id, source, storage_location "
                "FROM model_versions WHERE name = ? AND version = ? "
                "AND current_stage != 'Deleted_Internal'",
                (name, int(number)),
            ).fetchall()
            if len(found) != 1:
                return None
            number, created, run_id, source, storage = found[0]
            tags = dict(
                db.execute(
                    "SELECT key, value FROM model_version_tags WHERE name = ? AND version = ?",
                    (name, number),
                ).fetchall()
            )
            aliases = [
                a
                for (a,) in db.execute(
                    "SELECT alias FROM registered_model_aliases WHERE name = ? AND version = ?",
                    (name, number),
                )
            ]
    except (sqlite3.Error, ValueError):
        return None
    # MLflow downloads from the storage location when there is one, else the source.
    location = urlparse(str(storage or source or ""))
    if location.scheme != "file" or location.netloc not in ("", "localhost"):
        return None
    folder = Path(unquote(location.path))
    if not (folder / MODEL_FILE).is_file():
        return None
    return Version(name, str(number), aliases, tags, created, run_id), folder


@dataclass(frozen=True)
class Version:
    name: str
    version: str
    aliases: list[str]
    tags: dict[str, str]
    created: int
    run_id: str | None


def _version(name: str, v: Any) -> Version:
    """A :class:`Version` from MLflow's ModelVersion (one conversion for every read)."""
    return Version(
        name, str(v.version), list(v.aliases), dict(v.tags), v.creation_timestamp, v.run_id
    )


class Registry:
    """The registered models of one project's tracking store."""

    def __init__(self, root: Path, *, store: Store | None = None) -> None:
        self.store = store or Store(root)
        self.client = self.store.client
        self.root = root

    # -- reading ---------------------------------------------------------------------

    def versions(self, name: str) -> list[Version]:
        try:
            found = self.client.search_model_versions(f"name = '{name}'", max_results=10_000)
        except Exception:
            return []
        out = [_version(name, self.client.get_model_version(name, v.version)) for v in found]
        return sorted(out, key=lambda v: int(v.version))

    def alias(self, name: str, role: str) -> Version | None:
        try:
            v = self.client.get_model_version_by_alias(name, role)
        except Exception:
            return None
        return _version(name, v)

    def version(self, name: str, version: str) -> Version | None:
        """One version by its number (None when the model or the version does not exist)."""
        try:
            v = self.client.get_model_version(name, version)
        except Exception:
            return None
        return _version(name, v)

    def models(self) -> list[str]:
        return sorted(m.name for m in self.client.search_registered_models(max_results=1000))

    def audit(self, name: str | None = None, *, limit: int = 200) -> list[dict[str, str]]:
        experiment = self.client.get_experiment_by_name(AUDIT_EXPERIMENT)
        if experiment is None:
            return []
        query = f"tags.`nbops.model` = '{name}'" if name else ""
        runs = self.client.search_runs(
            [experiment.experiment_id],
            filter_string=query,
            order_by=["attributes.start_time DESC"],
            max_results=limit,
        )
        return [
            {k[len("audit.") :]: v for k, v in r.data.tags.items() if k.startswith("audit.")}
            | {"time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.info.start_time / 1000))}
            for r in runs
        ]

    def load_with(
        self, name: str, role: str, files: tuple[str, ...]
    ) -> tuple[Version, Any, dict[str, str]]:
        """:meth:`load`, plus the text of other files of the model folder (e.g. the
        ``features.json`` contract the service validates requests against)."""
        version, model = self.load(name, role)
        return version, model, self.files(name, version.version, files)

    def files(self, name: str, version: str, files: tuple[str, ...]) -> dict[str, str]:
        """The text of files of a version's model folder (not the model itself); a file
        the folder does not have is left out."""
        import mlflow.artifacts

        source = self.client.get_model_version_download_uri(name, version)
        texts = {}
        with tempfile.TemporaryDirectory(prefix="nbops-model-") as tmp:
            for file in files:
                try:
                    local = mlflow.artifacts.download_artifacts(
                        artifact_uri=f"{source}/{file}", dst_path=tmp
                    )
                except Exception:  # noqa: BLE001 - absent in versions registered before it existed
                    continue
                texts[file] = Path(local).read_text()
        return texts

    def load(self, name: str, role: str = "champion") -> tuple[Version, Any]:
        """Download and load the version holding ``role`` (an alias, or a version number
        such as ``7``), refusing a modified file.

        Only ``model.skops`` is read, with skops and nbops' own list of trusted types:
        neither the MLmodel file nor anything else in the artifact folder decides how
        the model is loaded, so a tampered folder cannot make this unpickle a file.
        """
        import mlflow.artifacts

        version = self.alias(name, role)
        if version is None and role.lstrip("v").isdigit():
            version = self.version(name, role.lstrip("v"))
        if version is None:
            raise ReleaseError(
                f"Model '{name}' has no {role}. See `nbops models`; a build that passes the gate sets it, or `nbops promote {name} VERSION`."
            )
        source = self.client.get_model_version_download_uri(name, version.version)
        with tempfile.TemporaryDirectory(prefix="nbops-model-") as tmp:
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=f"{source}/{MODEL_FILE}", dst_path=tmp
                )
            )
            return version, _checked_load(local, version, role)

    # -- writing ---------------------------------------------------------------------

    def register_uploaded(
        self, name: str, *, run_id: str, tags: dict[str, str], description: str = ""
    ) -> Version:
        """Register the model already uploaded under ``run_id``'s ``model/`` artifacts."""
        with contextlib.suppress(Exception):  # exists already
            self.client.create_registered_model(
                name,
                description="Registered by nbops builds; aliases champion / challenger / previous.",
            )
        import mlflow.artifacts

        run = self.client.get_run(run_id)
        with tempfile.TemporaryDirectory() as tmp:
            # From the run's artifact location itself: by run id and path, MLflow 3 takes
            # "model/..." for a model the task logged under that name (mlflow.sklearn.
            # log_model(name="model")) and looks it up in a default store (./mlflow.db).
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=f"{run.info.artifact_uri}/model/{MODEL_FILE}",
                    dst_path=tmp,
                    tracking_uri=self.store.uri,
                )
            )
            digest = file_sha256(local)
        version = self.client.create_model_version(
            name,
            source=f"{run.info.artifact_uri}/model",
            run_id=run_id,
            tags={**tags, "nbops.model_sha256": digest},
            description=description,
        )
        return Version(
            name,
            str(version.version),
            [],
            {**tags, "nbops.model_sha256": digest},
            version.creation_timestamp,
            run_id,
        )

    def release(
        self,
        name: str,
        *,
        build_id: str,
        gate_run_id: str,
        tags: dict[str, str],
        action: str,
        summary: str,
        compared_with: str | None,
        run_id: str,
    ) -> dict[str, Any]:
        """Register a build's model and apply its gate decision, once per build.

        Under the model's lock: a version already registered for ``build_id`` (a
        re-synced, half-published record) is reused, and one whose decision was applied
        is left alone. The decision is applied as :meth:`apply_gate` does (compare-and-set
        on the champion the gate compared against).
        """
        with self._lock(name):
            version = self._build_version(name, build_id)
            if version is None:
                version = self.register_uploaded(
                    name,
                    run_id=gate_run_id,
                    tags={**tags, "nbops.build_id": build_id},
                    description=summary[:5000],
                )
            elif version.tags.get("nbops.gate"):
                self._tag(name, version.version, {"nbops.build_run": run_id})
                return {
                    "name": name,
                    "version": version.version,
                    "action": version.tags["nbops.gate"],
                    "changes": [],
                    "note": "released before (a re-published record): nothing moved",
                }
            else:
                self._tag(name, version.version, {"nbops.build_run": run_id})
            taken, changes, note = self._apply_gate(
                name,
                version.version,
                action=action,
                summary=summary,
                run_id=run_id,
                compared_with=compared_with,
            )
            return {
                "name": name,
                "version": version.version,
                "action": taken,
                "changes": changes,
                "note": note,
            }

    def apply_gate(
        self,
        name: str,
        version: str,
        *,
        action: str,
        summary: str,
        run_id: str | None,
        compared_with: str | None = None,
    ) -> list[str]:
        """Set aliases as the gate decided (promote, hold or reject) and audit it.

        A promotion is a compare-and-set: it happens only if the champion is still
        ``compared_with``, the version the gate compared against (None: there was no
        champion, so by default only a first champion is promoted). Otherwise the decision is stale (another release came first) and the
        version is held as challenger with an audit note saying why, never promoted.
        """
        with self._lock(name):
            return self._apply_gate(
                name,
                version,
                action=action,
                summary=summary,
                run_id=run_id,
                compared_with=compared_with,
            )[1]

    def _apply_gate(
        self,
        name: str,
        version: str,
        *,
        action: str,
        summary: str,
        run_id: str | None,
        compared_with: str | None,
    ) -> tuple[str, list[str], str]:
        note = ""
        if action == "promote":
            champion = self.alias(name, "champion")
            current = champion.version if champion else None
            if current == (str(compared_with) if compared_with is not None else None):
                changes = self._move_champion(
                    name, version, reason=summary, run_id=run_id, action="promote (gate)"
                )
                # Tagged last: the tag marks the decision as applied (see :meth:`release`).
                self._tag(
                    name, version, {"nbops.gate_summary": summary[:5000], "nbops.gate": action}
                )
                return action, changes, note
            action = "hold"
            note = (
                f"Held as challenger, not promoted: the gate compared it with {_named(compared_with)}, "
                f"but the champion is now {_named(current)} (released after the gate decided), so "
                f"the decision is stale. Build again to compare with v{current}"
                if current
                else f"Held as challenger, not promoted: the gate compared it with {_named(compared_with)}, "
                "but there is no champion now, so the decision is stale. Build again"
            )
            note += f", or approve it: nbops promote {name} {version} --reason '...'."
            summary = f"{note} Gate: {summary}"
        changes = []
        if action == "hold":
            self.client.set_registered_model_alias(name, "challenger", version)
            changes.append(f"challenger → v{version}")
        self._audit(
            name,
            version,
            action="hold (stale decision)" if note else f"{action} (gate)",
            reason=summary,
            run_id=run_id,
            changes=changes,
        )
        self._tag(name, version, {"nbops.gate_summary": summary[:5000], "nbops.gate": action})
        return action, changes, note

    def _build_version(self, name: str, build_id: str) -> Version | None:
        """The version registered for build ``build_id``, if any (the first, should
        there be two). Asked by its tag: reading every version costs a query per version
        the model has, and a model gains one per build."""
        try:
            found = self.client.search_model_versions(
                f"name = '{name}' and tags.`nbops.build_id` = '{build_id}'", max_results=100
            )
        except Exception:
            return None
        if not found:
            return None
        first = min(found, key=lambda v: int(v.version))
        return _version(name, self.client.get_model_version(name, first.version))

    def promote(self, name: str, version: str, *, reason: str) -> list[str]:
        """Manual approval: make ``version`` the champion (its predecessor becomes previous)."""
        if not reason.strip():
            raise ReleaseError(
                "A promotion needs a reason: nbops promote NAME VERSION --reason '...'. It goes into the audit trail."
            )
        self._require_version(name, version)
        with self._lock(name):
            return self._move_champion(
                name, version, reason=reason, run_id=None, action="promote (manual)"
            )

    def rollback(self, name: str, *, reason: str) -> list[str]:
        """Bring back the previous champion; the current one loses the role."""
        if not reason.strip():
            raise ReleaseError(
                "A rollback needs a reason: nbops rollback NAME --reason '...'. It goes into the audit trail."
            )
        self._require_model(name)
        with self._lock(name):
            previous = self.alias(name, "previous")
            champion = self.alias(name, "champion")
            if previous is None:
                raise ReleaseError(
                    f"Model '{name}' has no previous champion to roll back to"
                    + (f" (champion is v{champion.version})" if champion else "")
                    + f". Promote a specific version instead: nbops promote {name} VERSION --reason '...'."
                )
            self.client.set_registered_model_alias(name, "champion", previous.version)
            self.client.delete_registered_model_alias(name, "previous")
            changes = [f"champion → v{previous.version}", "previous → (none)"]
            if champion is not None:
                self._tag(
                    name,
                    champion.version,
                    {"nbops.rolled_back": time.strftime("%Y-%m-%dT%H:%M:%S")},
                )
            self._audit(
                name,
                previous.version,
                action="rollback",
                reason=reason,
                run_id=None,
                changes=changes,
                replaced=champion.version if champion else "",
            )
            return changes

    def _move_champion(
        self, name: str, version: str, *, reason: str, run_id: str | None, action: str
    ) -> list[str]:
        """Make ``version`` the champion; the caller holds the model's lock."""
        champion = self.alias(name, "champion")
        if champion is not None and champion.version == version:
            raise ReleaseError(
                f"Version {version} of '{name}' is already the champion; nothing to do."
            )
        changes = []
        if champion is not None:
            self.client.set_registered_model_alias(name, "previous", champion.version)
            changes.append(f"previous → v{champion.version}")
        self.client.set_registered_model_alias(name, "champion", version)
        changes.append(f"champion → v{version}")
        challenger = self.alias(name, "challenger")
        if challenger is not None and challenger.version == version:
            self.client.delete_registered_model_alias(name, "challenger")
            changes.append("challenger → (none)")
        self._tag(name, version, {"nbops.promoted": time.strftime("%Y-%m-%dT%H:%M:%S")})
        self._audit(
            name,
            version,
            action=action,
            reason=reason,
            run_id=run_id,
            changes=changes,
            replaced=champion.version if champion else "",
        )
        return changes

    def _require_model(self, name: str) -> None:
        if name not in self.models():
            known = ", ".join(self.models()) or "none yet"
            raise ReleaseError(
                f"There is no registered model '{name}' (registered: {known}). A build that passes the gate registers one."
            )

    def _require_version(self, name: str, version: str) -> None:
        self._require_model(name)
        versions = [v.version for v in self.versions(name)]
        if str(version) not in versions:
            raise ReleaseError(
                f"Model '{name}' has no version {version}; its versions are {', '.join(versions)}. See `nbops models`."
            )

    def _tag(self, name: str, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(name, version, key, value)

    def _audit(
        self,
        name: str,
        version: str,
        *,
        action: str,
        reason: str,
        run_id: str | None,
        changes: list[str],
        replaced: str = "",
    ) -> None:
        experiment = self.store.experiment_id(AUDIT_EXPERIMENT)
        tags = {
            "mlflow.runName": f"{name} v{version}: {action}",
            "nbops.kind": "audit",
            "nbops.model": name,
            "audit.model": name,
            "audit.version": str(version),
            "audit.action": action,
            "audit.who": actor(),
            "audit.why": reason[:5000],
            "audit.changes": "; ".join(changes),
            "audit.build_run": run_id or "",
            "audit.replaced": replaced,
        }
        run = self.client.create_run(experiment, tags=tags)
        self.client.set_terminated(run.info.run_id)
        self.client.set_model_version_tag(
            name,
            str(version),
            f"nbops.audit.{int(time.time() * 1000)}",
            f"{action} by {tags['audit.who']}: {reason[:200]}",
        )

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        # One writer at a time per model and store on this machine: the lock lives with
        # the store, so projects sharing one (a SQLite file, a server) share the lock. A
        # shared server gets the guarantee for processes on one host; see docs/releases.md
        # for the team-scale caveat.
        folder = _lock_folder(self.store.uri, self.root)
        folder.mkdir(parents=True, exist_ok=True)
        with open(
            folder / f"registry-{hashlib.sha1(name.encode()).hexdigest()[:12]}.lock", "w"
        ) as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _lock_folder(uri: str, root: Path) -> Path:
    """Where the registry locks of the store at ``uri`` live."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :]).resolve().parent
    if "://" not in uri:  # a local folder store
        return Path(uri).resolve() if uri else local_store_dir(root)
    digest = hashlib.sha1(uri.encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"nbops-locks-{digest}"


def _named(version: str | None) -> str:
    return f"champion v{version}" if version else "no champion"


def describe_models(registry: Registry, *, names: list[str] | None = None) -> str:
    """The text of ``nbops models``: per model (``names``, default all), versions with
    aliases, metrics, gate, audit."""
    registered = registry.models()
    if names is not None and not set(names) & set(registered):
        others = f" (registered: {', '.join(registered)})" if registered else ""
        return f"No registered model {', '.join(names)} yet{others}. A build whose gate passes registers it (see env.yaml: release)."
    names = registered if names is None else [n for n in names if n in registered]
    if not names:
        return "No registered models yet. A build whose gate passes registers one (see env.yaml: release)."
    lines = []
    for name in names:
        lines.append(f"{name}")
        rows = []
        for v in reversed(registry.versions(name)):
            metric = v.tags.get("nbops.primary_metric", "")
            rows.append(
                [
                    f"v{v.version}",
                    ",".join(sorted(v.aliases)) or "-",
                    time.strftime("%Y-%m-%d %H:%M", time.localtime(v.created / 1000)),
                    f"{metric} {float(v.tags['nbops.metric']):.4f}"
                    if v.tags.get("nbops.metric")
                    else "-",
                    v.tags.get("nbops.gate", "-"),
                    (v.tags.get("nbops.build_run") or "")[:12],
                ]
            )
        widths = [
            max(
                len(r[i])
                for r in [["VERSION", "ALIASES", "CREATED", "METRIC", "GATE", "BUILD RUN"], *rows]
            )
            for i in range(6)
        ]
        for r in [["VERSION", "ALIASES", "CREATED", "METRIC", "GATE", "BUILD RUN"], *rows]:
            lines.append(
                "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip()
            )
        history = registry.audit(name, limit=10)
        if history:
            lines.append("  audit (latest first):")
            for entry in history:
                lines.append(
                    f"    {entry['time']}  v{entry.get('version', '?'):<4} {entry.get('action', ''):<18} by {entry.get('who', '?')}: {entry.get('why', '')[:90]}"
                )
        lines.append("")
    return "\n".join(lines).rstrip()
