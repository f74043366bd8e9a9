"""Sequence backbones (lstm, gru, cnn1d), the synthseq dataset, and their ONNX export."""

import json

import numpy as np
import pytest
import torch

from tlbench.plugin.errors import UserError
from tlbench.grid import expand
from tlbench.training.model import build_model
from tlbench.deploy.onnx_export import export_onnx, read_metadata, verify

from conftest import FAST_TRAIN, read_results, run_cli

FEATURES = 6


def _backbone(registry, name, **options):
    torch.manual_seed(0)
    entry = registry.get("backbones", name)
    return entry.obj((16, FEATURES), **{**entry.defaults, **options}).eval()


@pytest.mark.parametrize(
    "name, options, out_features",
    [
        ("lstm", {"hidden": 8, "layers": 2}, 8),
        ("lstm", {"hidden": 8, "bidirectional": True, "pooling": "mean"}, 16),
        ("gru", {"hidden": 8, "layers": 1, "bidirectional": True}, 16),
        ("gru", {"hidden": 8, "pooling": "mean"}, 8),
        ("cnn1d", {"width": 8, "blocks": 2}, 8),
        ("cnn1d", {"width": 8, "pooling": "max"}, 8),
    ],
)
def test_backbones_map_any_length_to_fixed_features(registry, name, options, out_features):
    backbone = _backbone(registry, name, **options)
    assert registry.get("backbones", name).meta["modality"] == "sequence"
    assert backbone.out_features == out_features
    for batch, time in ((3, 16), (2, 41), (4, 5)):
        with torch.no_grad():
            out = backbone(torch.randn(batch, time, FEATURES))
        assert out.shape == (batch, out_features) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_last_pooling_reads_the_right_hidden_states(registry, name):
    x = torch.randn(3, 12, FEATURES)
    uni = _backbone(registry, name, hidden=8, layers=2)
    with torch.no_grad():
        outputs, _ = uni.rnn(x)
        assert torch.allclose(uni(x), outputs[:, -1])
    bi = _backbone(registry, name, hidden=8, layers=2, bidirectional=True)
    with torch.no_grad():
        outputs, _ = bi.rnn(x)
        # forward direction ends at the last step, the backward one at the first
        expected = torch.cat([outputs[:, -1, :8], outputs[:, 0, 8:]], dim=1)
        assert torch.allclose(bi(x), expected, atol=1e-6)
    mean = _backbone(registry, name, hidden=8, layers=2, pooling="mean")
    with torch.no_grad():
        outputs, _ = mean.rnn(x)
        assert torch.allclose(mean(x), outputs.mean(1), atol=1e-6)


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("lstm", {"pooling": "max"}, "pooling"),
        ("gru", {"layers": 0}, "layers"),
        ("cnn1d", {"kernel_size": 4}, "odd"),
    ],
)
def test_bad_backbone_options_are_user_errors(registry, name, options, message):
    with pytest.raises(UserError, match=message):
        _backbone(registry, name, **options)
    with pytest.raises(UserError, match="time, features"):
        registry.get("backbones", name).obj((1, 28, 28))


@pytest.fixture(scope="module")
def synthseq(registry):
    return registry.get("datasets", "synthseq").obj()


def test_synthseq_is_deterministic_balanced_and_split(synthseq):
    from tlbench_plugins.datasets import synthseq as module

    assert synthseq.preprocessing.modality == "sequence"
    assert tuple(synthseq.preprocessing.input_shape) == (64, 6) and synthseq.preprocessing.scale == 1.0
    for domain in synthseq.domains:
        fresh = module.generate.__wrapped__(domain)  # regenerate, bypassing the cache
        for a, b in zip(fresh, module.generate(domain)):
            np.testing.assert_array_equal(a, b)
        data = synthseq.load(domain)
        assert data.train.x.shape[1:] == (64, 6) and data.train.x.dtype == torch.float32
        counts = torch.bincount(data.train.y, minlength=6)
        assert counts.min() == counts.max() > 0
        train_rows = {row.tobytes() for row in data.train.x.numpy()}
        assert not any(row.tobytes() in train_rows for row in data.test.x.numpy())
    lab = synthseq.load("lab").train.x
    assert torch.allclose(lab.mean((0, 1)), torch.zeros(6), atol=1e-3)
    assert torch.allclose(lab.std((0, 1)), torch.ones(6), atol=1e-2)


def _zero_crossings(x: torch.Tensor) -> float:
    centred = x - x.mean(1, keepdim=True)
    return float((centred[:, 1:] * centred[:, :-1] < 0).float().sum(1).mean())


def test_synthseq_domains_really_differ(synthseq):
    lab, field, drift, permuted = (synthseq.load(d).train for d in ("lab", "field", "drift", "permuted"))
    # field: per-channel gain and offset -> channel means move far off the lab normalisation
    assert (field.x.mean((0, 1)) - lab.x.mean((0, 1))).abs().max() > 1.0
    # permuted: gravity (lab's z channel) shows up on another channel, sign-flipped
    assert lab.x[..., 1].mean().abs() < 0.1 and permuted.x[..., 1].mean() < -3.0
    # drift: a slow clock makes walking oscillate faster per sample
    walk = synthseq.classes.index("walk")
    assert _zero_crossings(drift.x[drift.y == walk, :, 2]) > 1.15 * _zero_crossings(lab.x[lab.y == walk, :, 2])
    # same label space everywhere
    assert all(set(d.y.tolist()) == set(range(6)) for d in (lab, field, drift, permuted))


def test_synthseq_augment_is_a_seeded_random_view(synthseq):
    x = synthseq.load("lab").train.x[:8]
    a = synthseq.augment(x, torch.Generator().manual_seed(1))
    b = synthseq.augment(x, torch.Generator().manual_seed(1))
    c = synthseq.augment(x, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert float((a - x).abs().mean()) > 0.01
    # a mild change (gain, shift, jitter), not a new signal: per-channel spread is kept
    ratio = a.std((0, 1)) / x.std((0, 1))
    assert ((ratio > 0.8) & (ratio < 1.25)).all()


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("name", ["lstm", "gru", "cnn1d"])
def test_onnx_matches_torch_at_other_batch_sizes_and_lengths(registry, tmp_path, name, dynamo):
    small = {"lstm": {"hidden": 8}, "gru": {"hidden": 8, "layers": 1, "bidirectional": True}, "cnn1d": {"width": 8, "blocks": 2}}
    entry = registry.get("backbones", name)
    torch.manual_seed(0)
    model = build_model(entry, (16, FEATURES), 6, {**entry.defaults, **small[name]}).eval()
    path = tmp_path / "m.onnx"
    export_onnx(model, torch.randn(2, 16, FEATURES), path, {"tlbench.labels": list("abcdef")}, dynamo=dynamo)
    for batch, time in ((5, 16), (3, 37), (7, 9)):  # export was batch 2, length 16
        x = torch.randn(batch, time, FEATURES)
        with torch.no_grad():
            reference = model(x)
        check = verify(path, reference, x, reference.argmax(1), "cpu", 512)
        assert check["onnx_max_abs_diff"] < 1e-4, (batch, time)
        assert check["onnx_top1_agreement"] == 1.0


def test_image_backbone_on_sequence_data_is_rejected(registry):
    config = {"backbone": ["smallcnn"], "source": ["synthseq:lab"], "target": ["synthseq:field"],
              "strategy": ["finetune"], "loss": ["none"], "shots": [5], "seeds": [0]}
    with pytest.raises(UserError, match=r"smallcnn.*image.*sequence.*cnn1d, gru, lstm"):
        expand(config, registry)
    with pytest.raises(UserError, match="image backbones: .*smallcnn"):
        expand({**config, "backbone": ["lstm"], "source": ["digits:mnist"], "target": ["digits:uci"]}, registry)
    assert len(expand({**config, "backbone": ["lstm", "gru", "cnn1d"]}, registry)) == 3


def test_cli_rejects_image_backbone_on_synthseq_in_one_line(tmp_path):
    proc = run_cli("run", "--backbone", "smallcnn", "--source", "synthseq:lab", "--target", "synthseq:drift",
                   "--strategy", "finetune", "--loss", "none", "--shots", "5", "--results-dir", tmp_path)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "sequence backbones: cnn1d, gru, lstm" in proc.stderr


def test_end_to_end_tiny_grid_on_synthseq(tmp_path):
    proc = run_cli("run", "--backbone", "lstm,gru,cnn1d", "--source", "synthseq:lab", "--target", "synthseq:permuted",
                   "--strategy", "finetune", "--loss", "dann", "--shots", "2", "--results-dir", tmp_path,
                   "--set", "lstm.hidden=8", "--set", "gru.hidden=8", "--set", "gru.pooling=\"mean\"",
                   "--set", "cnn1d.width=8", *FAST_TRAIN)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = read_results(tmp_path)
    assert sorted(r["backbone"] for r in results) == ["cnn1d", "gru", "lstm"]
    for r in results:
        assert r["status"] == "ok", r["error"]
        assert r["input_shape"] == [64, 6]
        assert r["onnx_top1_agreement"] == 1.0 and r["onnx_max_abs_diff"] < 1e-3
        assert 0.0 <= r["target_acc"] <= 1.0
    gru = next(r for r in results if r["backbone"] == "gru")
    assert gru["backbone_options"]["pooling"] == "mean" and gru["backbone_options"]["hidden"] == 8
    onnx = next(tmp_path.glob("lstm__*/model.onnx"))
    preprocessing = json.loads(read_metadata(onnx)["tlbench.preprocessing"])
    assert preprocessing["modality"] == "sequence" and preprocessing["input_shape"] == [64, 6]
    assert len(preprocessing["mean"]) == 6
