"""A model registry on MLflow (optional: ``pip install 'pcbm[mlflow]'``): packages as model versions,
aliases instead of the deprecated stages, and ``models:/NAME@ALIAS`` for ``pcbm serve --model``.

``pcbm models register PKG|RUN|default --name pcbm --alias staging`` logs an MLflow run (the package's
model config as parameters, its validation metrics, pcbm version and sha256 as tags, the package folder
as artifacts) and registers the package as a new version of ``NAME``; ``pcbm models promote NAME
VERSION --alias production`` moves an alias; ``pcbm models list`` shows the versions. The tracking
server is ``MLFLOW_TRACKING_URI`` when set, else a local SQLite file (:func:`default_tracking_uri`).

Example:
    >>> parse_models_uri("models:/pcbm@production")
    ('pcbm', 'production', None)
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pcbm.errors import InputError

EXPERIMENT = "pcbm"
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[A-Za-z0-9_.-]+)|/(?P<version>\d+))$")


def _mlflow() -> Any:
    from pcbm.errors import optional_import

    return optional_import("mlflow", "mlflow", "the model registry")


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI``, else SQLite in ``$PCBM_MLFLOW_DIR`` (default ``~/.cache/pcbm/mlflow``)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    root = Path(os.environ.get("PCBM_MLFLOW_DIR", Path.home() / ".cache" / "pcbm" / "mlflow"))
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


def parse_models_uri(uri: str) -> tuple[str, str | None, str | None]:
    """(name, alias, version) of ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``."""
    m = _URI.match(uri)
    if not m:
        raise InputError(f"bad model URI {uri!r}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
    return m.group("name"), m.group("alias"), m.group("version")


def _client(tracking_uri: str | None) -> Any:
    mlflow = _mlflow()
    mlflow.set_tracking_uri(tracking_uri or default_tracking_uri())
    return mlflow, mlflow.MlflowClient()


def _experiment(mlflow: Any, client: Any) -> str:
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is not None:
        return exp.experiment_id
    uri = mlflow.get_tracking_uri()
    artifacts = None
    if uri.startswith("sqlite:///"):  # artifacts beside the database, not in the current folder
        artifacts = (Path(uri[len("sqlite:///"):]).parent / "artifacts").resolve().as_uri()
    return client.create_experiment(EXPERIMENT, artifact_location=artifacts)


def _flat_metrics(metrics: Any, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(metrics, dict):
        for k, v in metrics.items():
            out.update(_flat_metrics(v, f"{prefix}{k}."))
    elif isinstance(metrics, (int, float)) and not isinstance(metrics, bool):
        key = re.sub(r"[^A-Za-z0-9_./ -]", "_", prefix.rstrip("."))[:250]
        out[key] = float(metrics)
    return out


def register(package: Path, name: str, alias: str | None = None, tracking_uri: str | None = None) -> dict[str, Any]:
    """Log ``package`` as an MLflow run and register it as a new version of ``name`` (see the module docstring)."""
    mlflow, client = _client(tracking_uri)
    from pcbm.layout import METADATA

    meta = json.loads((Path(package) / METADATA).read_text())
    model = meta.get("model") or {}
    exp_id = _experiment(mlflow, client)
    with mlflow.start_run(experiment_id=exp_id, run_name=f"{model.get('name', 'model')} package") as run:
        params = {k: str(v)[:500] for k, v in (model.get("config") or {}).items()}
        if params:
            mlflow.log_params(params)
        metrics = {k: v for k, v in _flat_metrics(meta.get("metrics")).items() if v == v}  # no NaN
        if metrics:
            mlflow.log_metrics(metrics)
        tags = {"pcbm_version": str(meta.get("pcbm_version")), "sha256": str(model.get("weights_sha256")),
                "model_name": str(model.get("name")), "source": str(model.get("source"))}
        mlflow.set_tags(tags)
        mlflow.log_artifacts(str(package), artifact_path="package")
        source = f"{run.info.artifact_uri}/package"
        run_id = run.info.run_id
    try:
        client.get_registered_model(name)
    except Exception:  # noqa: BLE001 - MLflow raises RestException / MlflowException for "not found"
        client.create_registered_model(name, description="pcbm model packages (pcbm export)")
    mv = client.create_model_version(name, source, run_id=run_id, tags=tags)
    if alias:
        client.set_registered_model_alias(name, alias, mv.version)
    return {"name": name, "version": int(mv.version), "alias": alias, "run_id": run_id, "source": source,
            "tracking_uri": mlflow.get_tracking_uri()}


def promote(name: str, version: int, alias: str, tracking_uri: str | None = None) -> None:
    """Point ``alias`` of ``name`` at ``version``."""
    _, client = _client(tracking_uri)
    try:
        client.get_model_version(name, str(version))
    except Exception:  # noqa: BLE001
        raise InputError(f"no version {version} of registered model {name!r}") from None
    client.set_registered_model_alias(name, alias, str(version))


def versions(name: str | None = None, tracking_uri: str | None = None) -> list[dict[str, Any]]:
    """Every registered version (of ``name``, or of all models), newest first."""
    _, client = _client(tracking_uri)
    query = f"name='{name}'" if name else ""
    rows = []
    alias_of: dict[str, dict[str, list[str]]] = {}  # search results leave aliases out: ask each model once
    for mv in client.search_model_versions(query):
        if mv.name not in alias_of:
            by_alias = client.get_registered_model(mv.name).aliases or {}
            alias_of[mv.name] = {}
            for a, v in by_alias.items():
                alias_of[mv.name].setdefault(str(v), []).append(a)
        aliases = sorted(alias_of[mv.name].get(str(mv.version), []))
        rows.append({"name": mv.name, "version": int(mv.version), "aliases": aliases,
                     "sha256": (mv.tags or {}).get("sha256"), "pcbm_version": (mv.tags or {}).get("pcbm_version"),
                     "created": mv.creation_timestamp, "run_id": mv.run_id})
    return sorted(rows, key=lambda r: (r["name"], -r["version"]))


def download(uri: str, dest: Path, say: Callable[[str], None] = lambda _m: None) -> Path:
    """The package of ``models:/NAME@ALIAS`` (or ``/VERSION``) downloaded into ``dest``."""
    name, alias, version = parse_models_uri(uri)
    mlflow, client = _client(None)
    try:
        mv = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
    except Exception as e:  # noqa: BLE001
        raise InputError(f"{uri}: not in the registry at {mlflow.get_tracking_uri()} ({type(e).__name__})") from None
    say(f"downloading {name} version {mv.version} from {mlflow.get_tracking_uri()}")
    path = Path(mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=str(dest)))
    from pcbm.layout import is_package

    if not is_package(path):
        raise InputError(f"{uri} (version {mv.version}) is not a pcbm model package")
    return path
