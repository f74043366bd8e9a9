"""MLflow logging into a local file store, read back with MlflowClient."""

import json
import sys

import pytest

from conftest import FAST_TRAIN, TOY_PLUGINS, read_results, run_cli
from test_leaderboard import noise_set, write_results

mlflow = pytest.importorskip("mlflow", reason="the optional extra tlbench[mlflow] is not installed")


def client_for(uri):
    import os

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def test_leaderboard_logs_every_run_once_with_params_metrics_and_onnx(tmp_path):
    runs = write_results(tmp_path / "runs", noise_set())
    first = next(runs.iterdir())
    (first / "model.onnx").write_bytes(b"not really onnx")
    proc = run_cli("leaderboard", runs, "--format", "csv", "--mlflow")
    assert proc.returncode == 0, proc.stderr
    assert "logged 15 run(s), 0 already there" in proc.stderr
    client = client_for("file:" + str((runs / "mlruns").resolve()))
    experiment = client.get_experiment_by_name("tlbench")
    logged = client.search_runs([experiment.experiment_id], max_results=100)
    assert len(logged) == 15
    bad = next(r for r in logged if r.data.params["strategy"] == "bad" and r.data.params["seed"] == "0")
    assert bad.data.metrics["target_acc"] == pytest.approx(0.50) and bad.data.params["shots"] == "10"
    with_onnx = next(r for r in logged if r.data.tags["tlbench.dir"] == first.name)
    assert {a.path for a in client.list_artifacts(with_onnx.info.run_id)} == {"model.onnx", "result.json"}
    again = run_cli("leaderboard", runs, "--format", "csv", "--mlflow", f"file:{tmp_path / 'runs' / 'mlruns'}")
    assert "logged 0 run(s), 15 already there" in again.stderr


def test_run_with_mlflow_logs_the_trained_run_and_its_model_selection(tmp_path):
    proc = run_cli("--plugins-dir", TOY_PLUGINS, "run", "--backbone", "smallcnn", "--source", "toy:a", "--target", "toy:b",
                   "--strategy", "finetune", "--shots", "5", "--seeds", "0", "--results-dir", tmp_path, "--set", "smallcnn.width=8",
                   *FAST_TRAIN, "--set", "train.int8=false", "--set", "train.model_selection=source-val",
                   "--set", "train.selection_every=2", "--mlflow", f"file:{tmp_path / 'store'}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (result,) = read_results(tmp_path)
    assert result["model_selection"] == "source-val" and result["selection_evaluations"] == 2
    assert result["selected_step"] in (2, 4) and 0.0 <= result["selection_score"] <= 1.0
    client = client_for(f"file:{tmp_path / 'store'}")
    (run,) = client.search_runs([client.get_experiment_by_name("tlbench").experiment_id])
    assert run.data.tags["tlbench.run_id"] == result["run_id"]
    assert run.data.params["train.model_selection"] == "source-val" and run.data.params["model_selection"] == "source-val"
    assert "model.onnx" in {a.path for a in client.list_artifacts(run.info.run_id)}
    provenance = json.loads(run.data.tags["tlbench.provenance"])
    assert provenance["strategies"]["name"] == "finetune"


def test_missing_mlflow_is_one_clear_line(monkeypatch):
    from tlbench.plugin.errors import UserError
    from tlbench.report.tracking import require_mlflow

    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    with pytest.raises(UserError, match=r"pip install 'tlbench\[mlflow\]'"):
        require_mlflow()
