"""The adaptation losses: their mathematics, their training, and that they never touch the export."""

import math

import onnx
import pytest
import torch

from tlbench.plugin.augment import image_view, sequence_view
from tlbench.plugin.contracts import AdaptationBatch
from tlbench.grid import expand
from tlbench.execution.runner import Runner
from tlbench_plugins.losses.cdan import multilinear_map
from tlbench_plugins.losses.contrastive import info_nce
from tlbench_plugins.losses.coral import coral, covariance
from tlbench_plugins.losses.entropy import prediction_entropy
from tlbench_plugins.losses.grl import dann_schedule
from tlbench_plugins.losses.mmd import mk_mmd

from test_training import _ctx, _model, _toy

ADAPTATION_LOSSES = ["dann", "cdan", "mmd", "coral", "contrastive", "entropy"]


def _gaussian(n, d, seed, shift=0.0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) * scale + shift


# -- MMD -----------------------------------------------------------------------------------------
def test_mmd_is_zero_for_identical_and_small_for_same_distribution():
    x = _gaussian(64, 8, 0)
    assert abs(float(mk_mmd(x, x.clone()))) < 1e-6
    same = float(mk_mmd(x, _gaussian(64, 8, 1)))
    assert abs(same) < 0.02
    assert float(mk_mmd(x, _gaussian(64, 8, 1, shift=1.0))) > 10 * max(abs(same), 1e-3)


def test_mmd_grows_with_the_mean_shift():
    x = _gaussian(64, 8, 0)
    values = [float(mk_mmd(x, _gaussian(64, 8, 1, shift=s))) for s in (0.0, 0.25, 0.5, 1.0, 2.0)]
    assert values == sorted(values) and values[-1] > 0.3, values


def test_mmd_gradient_pulls_target_toward_source():
    x = _gaussian(32, 4, 0)
    y = _gaussian(32, 4, 1, shift=1.0).requires_grad_(True)
    mk_mmd(x, y).backward()
    # one gradient step on y lowers the mean gap
    grad, y = y.grad, y.detach()
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert float((y - 10.0 * grad).mean() - x.mean()) < float(y.mean() - x.mean())


# -- CORAL ---------------------------------------------------------------------------------------
def test_coral_matches_a_hand_computation():
    s = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 0.0]])
    t = torch.tensor([[0.0, 0.0], [2.0, 2.0], [4.0, 4.0]])
    # by hand: means (3, 2) and (2, 2); unbiased covariances
    c_s = torch.tensor([[4.0, -2.0], [-2.0, 4.0]])
    c_t = torch.tensor([[4.0, 4.0], [4.0, 4.0]])
    assert torch.allclose(covariance(s), c_s)
    assert torch.allclose(covariance(t), c_t)
    # ||C_s - C_t||_F^2 = 0 + 36 + 36 + 0 = 72, / (4 * 2^2) = 4.5
    assert float(coral(s, t)) == pytest.approx(4.5)


def test_coral_is_zero_for_identical_and_grows_with_a_covariance_shift():
    x = _gaussian(200, 6, 0)
    assert float(coral(x, x.clone())) < 1e-10
    assert float(coral(x, x + 5.0)) < 1e-10  # a pure mean shift leaves covariances alone
    values = [float(coral(x, _gaussian(200, 6, 1, scale=s))) for s in (1.0, 1.5, 2.0, 3.0)]
    assert values == sorted(values) and values[-1] > 100 * values[0], values


# -- gradient reversal (DANN, CDAN): the reversed gradient against a NumPy derivation is in
# test_loss_references.py ------------------------------------------------------------------------
def test_dann_schedule_ramps_from_zero_to_one():
    values = [dann_schedule(p) for p in (0.0, 0.1, 0.5, 1.0)]
    assert values[0] == 0.0 and values == sorted(values)
    assert values[1] == pytest.approx(2 / (1 + math.exp(-1)) - 1)
    assert 0.99 < values[-1] < 1.0


# -- CDAN ----------------------------------------------------------------------------------------
def test_cdan_discriminator_sees_features_times_classes(registry):
    d, c, n = 7, 4, 5
    loss = registry.get("adaptation_losses", "cdan").obj()
    loss.setup(d, c, None)
    seen = []
    loss.discriminator.register_forward_hook(lambda m, args, out: seen.append(args[0].shape))
    batch = AdaptationBatch(torch.randn(n, d), torch.randn(n, c), torch.randn(n, d), torch.randn(n, c), None, None, None, 0.5)
    assert torch.isfinite(loss(batch))
    assert seen == [torch.Size([2 * n, d * c])]
    f, p = torch.randn(3, d), torch.softmax(torch.randn(3, c), 1)
    assert torch.allclose(multilinear_map(f, p).view(3, d, c), f[:, :, None] * p[:, None, :])


def test_cdan_uses_a_random_projection_beyond_max_map_dim(registry):
    loss = registry.get("adaptation_losses", "cdan").obj(max_map_dim=32)
    loss.setup(16, 10, None)
    assert loss.randomized and loss.discriminator[0].in_features == 32


# -- contrastive ---------------------------------------------------------------------------------
def test_info_nce_is_minimal_when_views_match():
    z = _gaussian(16, 8, 0)
    matched = float(info_nce(z, z.clone(), 0.2))
    for seed in range(5):
        noisy = z + 0.5 * _gaussian(16, 8, seed + 1)
        assert matched < float(info_nce(z, noisy, 0.2))
        assert matched < float(info_nce(z, z[torch.randperm(16, generator=torch.Generator().manual_seed(seed))], 0.2))
    # orthogonal embeddings that match their partner give the closed-form minimum
    eye = torch.eye(8)
    expected = -math.log(math.exp(1 / 0.2) / (math.exp(1 / 0.2) + 14))
    assert float(info_nce(eye, eye, 0.2)) == pytest.approx(expected, rel=1e-5)


def test_augmented_views_differ_per_example_and_keep_shape():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 1, 12, 12).repeat(2, 1, 1, 1)  # examples 0-3 equal examples 4-7
    view = image_view(x, g)
    assert view.shape == x.shape and torch.isfinite(view).all()
    assert not torch.allclose(view[:4], view[4:], atol=1e-2)
    seq = torch.randn(3, 20, 5)
    assert sequence_view(seq, g).shape == seq.shape


# -- entropy -------------------------------------------------------------------------------------
def test_entropy_of_one_hot_is_zero_and_uniform_is_log_classes():
    one_hot = torch.tensor([[100.0, 0.0, 0.0], [0.0, 0.0, 100.0]])
    assert torch.allclose(prediction_entropy(one_hot), torch.zeros(2), atol=1e-6)
    assert torch.allclose(prediction_entropy(torch.zeros(2, 5)), torch.full((2,), math.log(5)))


# -- training, end to end ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ADAPTATION_LOSSES)
def test_each_loss_trains_without_nan_and_trains_its_parameters(registry, name):
    src, tgt = _toy(registry)
    model = _model(registry)
    loss = registry.get("adaptation_losses", name).obj()
    ctx = _ctx(model, src.train, tgt.train, None, steps=6)
    ctx.augment = lambda x: image_view(x, torch.Generator().manual_seed(1))
    loss.setup(model.backbone.out_features, 3, ctx)
    own_before = [p.clone() for p in loss.parameters()]
    backbone_before = [p.clone() for p in model.backbone.parameters()]
    stats = transfer_model(registry, model, loss, ctx)
    assert set(stats.last_terms) == {"source_ce", "adaptation"}
    assert all(math.isfinite(v) for v in stats.last_terms.values())
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(backbone_before, model.backbone.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(own_before, loss.parameters()))
    assert not any(k.startswith(("discriminator", "projector")) for k in model.state_dict())


def transfer_model(registry, model, loss, ctx):
    from tlbench.training.loop import transfer

    return transfer(model, registry.get("strategies", "finetune").obj(), loss, ctx)


def _onnx_interface(path):
    model = onnx.load(str(path))

    def shape(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    return (
        [(v.name, shape(v)) for v in model.graph.input],
        [(v.name, shape(v)) for v in model.graph.output],
        sorted((t.name, tuple(t.dims)) for t in model.graph.initializer),
    )


def test_owning_losses_do_not_change_the_exported_model(registry, tmp_path):
    config = {
        "backbone": ["smallcnn"], "source": ["toy:a"], "target": ["toy:b"], "strategy": ["finetune"],
        "loss": ["none", "cdan", "contrastive"], "shots": [0], "seeds": [0],
        "train": {"steps": 3, "source_epochs": 1.0, "latency_repeats": 2, "export_dynamo": False},
        "set": {"smallcnn": {"width": 8}},
    }
    runner = Runner(registry, tmp_path, log=lambda msg: None)
    interfaces, terms = {}, {}
    for spec in expand(config, registry):
        record = runner.run(spec)
        assert record["status"] == "ok", record["error"]
        assert record["onnx_top1_agreement"] == 1.0
        interfaces[spec.loss] = _onnx_interface(runner.run_dir(spec) / "model.onnx")
        terms[spec.loss] = record["final_loss_terms"]
    assert interfaces["cdan"] == interfaces["none"] == interfaces["contrastive"]
    assert "adaptation" in terms["cdan"] and not terms["none"]
