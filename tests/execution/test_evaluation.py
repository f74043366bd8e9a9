"""A cell's evaluation: chunked eval passes give the same accuracies, the BatchNorm diagnostic
runs on a capped seeded subset and says so, with the stored statistics' accuracy on those rows."""

import torch
from torch import nn

import tlbench.execution.evaluation as evaluation
from tlbench.plugin.contracts import Split
from tlbench.training.batchnorm import batch_statistics_accuracy


def _model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    with torch.no_grad():  # stored statistics that differ from any test batch's own
        model[1].running_mean.fill_(0.5)
        model[1].running_var.fill_(3.0)
    return model.eval()


def _split(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return Split(x, (x[:, 0] > 0).long() + (x[:, 1] > 1).long())


def _rows_seen(model):
    seen = []
    model[0].register_forward_hook(lambda module, inputs, output: seen.append(len(inputs[0])))
    return seen


def test_eval_rows_are_capped_on_a_cpu_only():
    assert evaluation.eval_rows(512, "cpu") == evaluation.CPU_EVAL_ROWS
    assert evaluation.eval_rows(64, "cpu") == 64
    assert evaluation.eval_rows(512, "cuda:0") == 512


def test_chunked_evaluation_and_uncapped_diagnostic_match_the_plain_computation(monkeypatch):
    model, target, source = _model(), _split(300, 1), _split(700, 2)
    monkeypatch.setattr(evaluation, "BATCH_STATS_ROWS", 10_000)
    fields, logits, _ = evaluation.evaluate_cell(model, target, source, ["target_labeled"], False, 512, "cpu", seed=0)
    with torch.no_grad():
        full = model(target.x)
    assert torch.allclose(logits, full, atol=1e-5)
    assert fields["target_acc"] == float((full.argmax(1) == target.y).float().mean())
    assert fields["source_acc"] == float((model(source.x).argmax(1) == source.y).float().mean())
    # only target data shaped the statistics: no source diagnostic, the target one on every row
    assert fields["source_acc_batch_stats"] is None and fields["evaluation"]["batch_stats"]["source"] is None
    assert fields["target_acc_batch_stats"] == batch_statistics_accuracy(model, target.x, target.y, 512)
    info = fields["evaluation"]["batch_stats"]["target"]
    assert info["rows"] == info["of"] == 300 and info["stored_statistics_acc"] == fields["target_acc"]
    assert fields["evaluation"]["rows_per_pass"] == evaluation.CPU_EVAL_ROWS


def test_batch_statistics_diagnostic_runs_on_a_capped_seeded_subset(monkeypatch):
    model, target, source = _model(), _split(300, 1), _split(2000, 2)
    monkeypatch.setattr(evaluation, "BATCH_STATS_ROWS", 256)
    seen = _rows_seen(model)
    mix = ["source", "target_unlabeled"]
    fields, _, _ = evaluation.evaluate_cell(model, target, source, mix, False, 128, "cpu", seed=3)
    # eval passes in chunks of at most CPU_EVAL_ROWS: 300 target + 2000 source rows; then the
    # diagnostic (on a copy of the model), in batches of 128 rows in all (64 of each domain):
    # 256 source rows with 256 target companions, then 256 target rows with 256 source ones
    eval_chunks = seen[:-8]
    assert max(eval_chunks) <= evaluation.CPU_EVAL_ROWS and sum(eval_chunks) == 300 + 2000
    assert seen[-8:] == [128] * 8
    info = fields["evaluation"]["batch_stats"]
    assert info["source"]["rows"] == 256 and info["source"]["of"] == 2000
    assert info["target"]["rows"] == 256 and info["target"]["of"] == 300
    assert 0.0 <= fields["source_acc_batch_stats"] <= 1.0 and 0.0 <= fields["target_acc_batch_stats"] <= 1.0
    # the stored statistics' accuracy is on the subset's rows, not the whole split
    for side in ("source", "target"):
        correct = info[side]["stored_statistics_acc"] * 256
        assert abs(correct - round(correct)) < 1e-9
    again, _, _ = evaluation.evaluate_cell(model, target, source, mix, False, 128, "cpu", seed=3)
    assert again["evaluation"]["seconds"] >= 0
    for record in (again, fields):
        record["evaluation"].pop("seconds")
    assert again == fields  # the subset is seeded


def test_differing_label_spaces_skip_every_source_measure():
    model, target, source = _model(), _split(50, 1), _split(80, 2)
    fields, _, _ = evaluation.evaluate_cell(model, target, source, ["source", "target_unlabeled"], True, 512, "cpu", seed=0)
    assert fields["source_acc"] is None and fields["source_acc_batch_stats"] is None
    assert fields["target_acc_batch_stats"] is not None
