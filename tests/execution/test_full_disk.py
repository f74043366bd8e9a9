"""A full disk is reported as "no space left on device", wherever in a cell it strikes: as an
``OSError(ENOSPC)`` (here from writing to /dev/full, a real device that is always full) or as
the ``DecodeError`` onnx raises for a model file cut short by a full disk during INT8."""

import errno
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import TOY_PLUGINS, run_cli
from tlbench.utils import disk

FULL_DISK_LOSS = '''
from tlbench import hookimpl
from tlbench.plugin.contracts import AdaptationLoss


class WritesToFullDisk(AdaptationLoss):
    def forward(self, batch):
        with open("/dev/full", "wb") as handle:  # every write fails with ENOSPC
            handle.write(b"x" * 4096)
            handle.flush()
        return batch.source_features.sum() * 0.0


@hookimpl
def register_adaptation_losses(register):
    register("fulldisk", WritesToFullDisk)
'''


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_enospc_inside_a_cell_is_reported_as_no_space_left(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "full_disk_loss.py").write_text(FULL_DISK_LOSS)
    proc = run_cli("--plugins-dir", TOY_PLUGINS, "--plugins-dir", plugins, "run", "--backbone", "smallcnn",
                   "--source", "toy:a", "--target", "toy:b", "--strategy", "finetune", "--loss", "fulldisk",
                   "--shots", "5", "--seeds", "0", "--threads", "1", "--set", "train.steps=3",
                   "--set", "train.source_epochs=1", "--set", "train.int8=false", "--set", "train.export_dynamo=false",
                   "--results-dir", tmp_path / "runs")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [record] = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*/result.json")]
    assert record["status"] == "failed"
    assert record["error"].startswith("no space left on device"), record["error"]
    assert "No space left on device" in record["error"]  # the original OSError is kept after it


def _truncated_model(tmp_path) -> Path:
    """An ONNX file cut short, as a write on a full disk leaves it."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
    )
    data = helper.make_model(graph).SerializeToString()
    path = tmp_path / "model.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(Exception) as caught:
        onnx.load(str(path))
    assert type(caught.value).__name__ == "DecodeError"
    return path


def _int8_error(path: Path) -> str:
    from tlbench.deploy.quantize import int8_report

    x = np.zeros((8, 4), np.float32)
    report = int8_report(path, path.with_name("model.int8.onnx"), calibration=x, test_x=x, test_y=np.zeros(8, int),
                         fp32_acc=1.0, latency_inputs=(x[:1], x))
    assert not path.with_name("model.int8.onnx").exists()
    return report["int8_error"]


def test_int8_decode_error_on_a_full_disk_is_reported_as_no_space_left(tmp_path, monkeypatch):
    path = _truncated_model(tmp_path)
    assert _int8_error(path).startswith("DecodeError")  # plenty of space: the error as it is
    monkeypatch.setattr(disk, "free_bytes", lambda directory: 4096)  # the disk the run writes to is full
    error = _int8_error(path)
    assert error.startswith("no space left on device") and "DecodeError" in error, error


def test_enospc_is_found_anywhere_in_the_exception_chain(tmp_path):
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "model.onnx"))
        except OSError as inner:
            raise RuntimeError("export failed") from inner
    except RuntimeError as exc:
        assert disk.describe_failure(exc, tmp_path).startswith("no space left on device")
    other = ValueError("loss is nan")
    assert disk.describe_failure(other, tmp_path) == "ValueError: loss is nan"
    assert disk.free_bytes(tmp_path / "not" / "made" / "yet") == disk.free_bytes(tmp_path)
