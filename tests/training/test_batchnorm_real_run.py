"""On a real adaptation run the stored BatchNorm statistics describe the reported model."""

import pytest

from conftest import read_results, run_cli

# A deliberately hot recipe (constant Adam at 3e-3 for DANN): the running averages of the
# BatchNorm statistics then trail the weights, as they did in tlbench's first-round collapse.
CELL = ["run", "--backbone", "smallcnn", "--source", "digits:mnist", "--target", "digits:uci", "--strategy", "finetune",
        "--loss", "dann", "--shots", "0", "--set", "finetune.backbone_lr_scale=1.0", "--set", "smallcnn.width=16",
        "--set", "dann.optimizer=adam", "--set", "dann.lr=0.003", "--set", "dann.schedule=constant",
        "--set", "train.steps=300", "--set", "train.source_epochs=3", "--set", "train.int8=false",
        "--set", "train.latency_repeats=2", "--set", "train.export_dynamo=false"]


@pytest.mark.slow
@pytest.mark.parametrize("batches", [20, 0])
def test_stored_statistics_reproduce_batch_statistics_accuracy(tmp_path, batches):
    out = tmp_path / "runs"
    proc = run_cli(*CELL, "--set", f"train.bn_recalibration_batches={batches}", "--results-dir", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (result,) = read_results(out)
    assert result["bn_inputs"] == ["source", "target_unlabeled"]
    # the loss's own lr reaches every group: backbone (backbone_lr_scale 1), head and discriminator
    assert result["transfer_recipe"]["lr"] == 0.003 and result["lr_groups"][0]["lrs"] == [0.003, 0.003, 0.003]
    # like for like: the stored statistics' accuracy on the rows the diagnostic used
    used = result["evaluation"]["batch_stats"]["source"]
    assert used["rows"] <= used["of"] and abs(used["stored_statistics_acc"] - result["source_acc"]) <= 0.05
    gap = abs(used["stored_statistics_acc"] - result["source_acc_batch_stats"])
    if batches:
        assert result["bn_recalibration"]["layers"] > 0 and result["bn_recalibration"]["examples"] == 20 * 128
        assert gap <= 0.02, result  # the reported model is the one that trained
    else:  # the measure sees stale statistics when nothing recomputes them
        assert result["bn_recalibration"] is None and gap > 0.02, result
