"""Log stored runs to MLflow: parameters, metrics, tags and the ONNX model as an artifact.

Optional: ``pip install 'tlbench[mlflow]'`` (mlflow-skinny). The default store is a local
folder, ``file:RESULTS/mlruns``. A run is logged once: a tlbench run id already present in the
experiment (tag ``tlbench.run_id``) is skipped, so logging a directory again adds only new runs.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tlbench.plugin.errors import UserError
from tlbench.execution.results import ONNX_FILE, RESULT_FILE, read_result
from tlbench.settings.train import LAST_STEP

EXPERIMENT = "tlbench"
RUN_ID_TAG = "tlbench.run_id"
PARAM_KEYS = ("backbone", "source", "target", "strategy", "loss", "shots", "seed", "model_selection")
OPTION_TABLES = ("backbone_options", "strategy_options", "loss_options", "train")
TAG_KEYS = ("status", "device", "device_name", "int8_method", "error")


def default_uri(results_dir) -> str:
    """The local file store next to the results: ``file:<abs RESULTS>/mlruns``."""
    return "file:" + str((Path(results_dir) / "mlruns").resolve())


def require_mlflow() -> None:
    """Raise a one-line UserError when MLflow is not installed."""
    try:
        import mlflow.tracking  # noqa: F401
    except ImportError:
        raise UserError("--mlflow needs MLflow: pip install 'tlbench[mlflow]' (or mlflow-skinny)") from None


# Schemes that need SQLAlchemy (full `mlflow`, not mlflow-skinny).
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
TRACKING_URI_HELP = ("a folder path, file:PATH, http(s)://HOST[:PORT] (an MLflow tracking server), databricks, "
                     "or sqlite:///FILE.db with full mlflow installed")


def _known_schemes() -> set[str]:
    """Tracking-store schemes this MLflow offers (its store registry, plugins included)."""
    schemes = {"", "file", "http", "https", "databricks"}
    try:
        from mlflow.tracking._tracking_service.utils import _tracking_store_registry

        schemes |= set(_tracking_store_registry._registry)
    except Exception:  # noqa: BLE001 - a private API: fall back to the documented schemes
        pass
    return schemes


def local_store_path(uri: str) -> str | None:
    """The folder of a local file store URI (``PATH``, ``file:PATH``, ``file:///PATH``), else None."""
    if uri.startswith("file:"):
        rest = uri[len("file:"):]
        if rest.startswith("//"):
            rest = rest[2:]
            if not rest.startswith("/"):  # file://host/path: only localhost is local
                host, _, tail = rest.partition("/")
                return "/" + tail if host in ("", "localhost") else None
        return rest or None
    return uri if "://" not in uri else None


def check_tracking_uri(uri: str | None, flag: str = "--mlflow") -> str | None:
    """A one-line UserError, before any work, for a tracking URI MLflow cannot log to: an
    unsupported scheme (``ftp://nowhere``), a server URI without a host, a database URI without
    SQLAlchemy. Returns the folder of a local file store (for the caller to check it is
    writable), else None."""
    require_mlflow()
    if not uri:
        return None  # the default, file:RESULTS/mlruns, lives in the results directory
    from urllib.parse import urlparse

    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if len(scheme) == 1 and uri[1:2] == ":":  # a Windows drive letter, C:\...
        scheme = ""
    if not scheme and uri.lower() in ("databricks", "databricks-uc", "uc"):  # MLflow's bare profile URIs
        return None
    if scheme in ("", "file"):
        path = local_store_path(uri)
        if path is None:
            raise UserError(f"{flag} {uri!r} is not a local file store; use file:/ABSOLUTE/PATH or a folder path")
        return path
    if scheme in DATABASE_SCHEMES:
        try:
            import sqlalchemy  # noqa: F401
        except ImportError:
            raise UserError(f"{flag} {uri!r}: a {scheme} store needs full mlflow (pip install mlflow), not mlflow-skinny; "
                            f"or use {TRACKING_URI_HELP}") from None
        return None
    if scheme not in _known_schemes():
        raise UserError(f"{flag} {uri!r}: unsupported tracking URI scheme {scheme + '://'!r}; use {TRACKING_URI_HELP}")
    if scheme in ("http", "https") and not parsed.netloc:
        raise UserError(f"{flag} {uri!r} has no host; use {scheme}://HOST[:PORT]")
    return None


def _client(uri: str):
    require_mlflow()
    from mlflow.tracking import MlflowClient

    if uri.startswith("file:") or "://" not in uri:
        # MLflow 3 keeps the folder store in maintenance mode behind this opt-in; it still works
        # and needs no database packages, which mlflow-skinny lacks.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MlflowClient(tracking_uri=uri)


def params_of(result: dict) -> dict[str, str]:
    """Flat MLflow parameters: the grid cell and every option (``train.steps``, ``strategy.alpha``)."""
    params = {k: str(result[k]) for k in PARAM_KEYS if result.get(k) is not None}
    params.setdefault("model_selection", str((result.get("train") or {}).get("model_selection", LAST_STEP)))
    for table in OPTION_TABLES:
        prefix = table.removesuffix("_options")
        for key, value in sorted((result.get(table) or {}).items()):
            params[f"{prefix}.{key}"] = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return {k: v[:500] for k, v in params.items()}


def metrics_of(result: dict) -> dict[str, float]:
    """Every top-level number of a result (accuracy, timings, latencies, sizes, parity)."""
    return {
        k: float(v) for k, v in result.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("seed", "shots")
    }


def log_results_dir(results_dir, uri: str | None = None, experiment: str = EXPERIMENT, log=print) -> dict:
    """Log every result under ``results_dir`` not yet in the store; returns counts and the URI."""
    uri = uri or default_uri(results_dir)
    client = _client(uri)
    from mlflow.entities import Metric, Param, RunTag

    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    logged = skipped = 0
    for path in sorted(Path(results_dir).glob(f"*/{RESULT_FILE}")):
        result = read_result(path)
        if result is None:
            continue
        existing = client.search_runs([experiment_id], f"tags.`{RUN_ID_TAG}` = '{result['run_id']}'", max_results=1)
        if existing:
            skipped += 1
            continue
        tags = {RUN_ID_TAG: result["run_id"], "tlbench.dir": path.parent.name}
        tags.update({f"tlbench.{k}": str(result[k])[:5000] for k in TAG_KEYS if result.get(k) is not None})
        run = client.create_run(experiment_id, tags=tags, run_name=path.parent.name[:250])
        now = int(time.time() * 1000)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, v, now, 0) for k, v in metrics_of(result).items()],
            params=[Param(k, v) for k, v in params_of(result).items()],
            tags=[RunTag("tlbench.provenance", json.dumps(result.get("provenance") or {})[:5000])],
        )
        client.log_artifact(run.info.run_id, str(path))
        onnx = path.parent / (result.get("onnx_path") or ONNX_FILE)
        if onnx.is_file():
            client.log_artifact(run.info.run_id, str(onnx))
        client.set_terminated(run.info.run_id, "FINISHED" if result["status"] == "ok" else "FAILED")
        logged += 1
    if log:
        log(f"mlflow: logged {logged} run(s), {skipped} already there, to {uri} (experiment {experiment!r})")
    return {"logged": logged, "skipped": skipped, "uri": uri, "experiment_id": experiment_id}
