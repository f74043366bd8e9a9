"""Optimizer recipes, schedules, per-part learning rates, BatchNorm recalibration, control and adabn."""

import math

import pytest
import torch
from torch import nn

from tlbench.plugin.contracts import Phase, TransferContext
from tlbench.training.batchnorm import batch_statistics_accuracy, batchnorm_layers, recalibrate
from tlbench.training.loop import fit, transfer
from tlbench.training.model import build_model
from tlbench.training.optim import lr_factor, make_optimizer, make_scheduler, recipe_of, transfer_recipe

INVERSE = recipe_of({"schedule": "inverse", "schedule_gamma": 10.0, "schedule_power": 0.75})


def test_schedules_give_the_documented_factors():
    assert lr_factor(0, 100, recipe_of({})) == 1.0 and lr_factor(99, 100, recipe_of({})) == 1.0
    cosine = recipe_of({"schedule": "cosine"})
    assert lr_factor(0, 100, cosine) == 1.0
    assert lr_factor(50, 100, cosine) == pytest.approx(0.5)
    assert lr_factor(100, 100, cosine) == pytest.approx(0.0, abs=1e-12)  # ends at zero
    assert lr_factor(50, 100, INVERSE) == pytest.approx((1 + 10 * 0.5) ** -0.75)  # the DANN annealing at p = 0.5
    assert lr_factor(100, 100, INVERSE) == pytest.approx(11 ** -0.75)
    step = recipe_of({"schedule": "step", "step_every": 0.25, "step_factor": 0.5})
    assert [lr_factor(s, 100, step) for s in (0, 24, 25, 50, 99)] == pytest.approx([1, 1, 0.5, 0.25, 0.125])
    warm = recipe_of({"schedule": "cosine", "warmup": 0.1})
    assert lr_factor(0, 100, warm) == pytest.approx(0.1)  # 1/10 of the way up
    assert lr_factor(4, 100, warm) == pytest.approx(0.5 * 0.5 * (1 + math.cos(math.pi * 0.04)))
    assert lr_factor(10, 100, warm) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.1)))  # warm-up over


def test_scheduler_scales_every_group_and_keeps_their_ratio():
    a, b = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    recipe = {**INVERSE, "optimizer": "sgd", "momentum": 0.0}
    optimizer = make_optimizer([{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.01}], recipe)
    scheduler = make_scheduler(optimizer, recipe, start=20, total=100)  # a phase starting at step 20
    for _ in range(30):
        optimizer.step()
        scheduler.step()
    factor = lr_factor(50, 100, recipe)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.1 * factor, 0.01 * factor])


def test_fit_applies_the_schedule_to_the_updates():
    """With plain SGD and a constant gradient of 1, the parameter moves by exactly the sum of the
    scheduled rates, so the schedule is what really drives the optimizer."""
    w = nn.Parameter(torch.zeros(1))
    model = nn.Module()
    model.w = w
    recipe = {**INVERSE, "optimizer": "sgd", "momentum": 0.0, "lr": 0.1}
    fit(model, [Phase("p", [{"params": [w], "lr": 0.1}], 40)], lambda progress: ({"x": w.sum()}, 1), recipe=recipe)
    expected = -sum(0.1 * lr_factor(s, 40, recipe) for s in range(40))
    assert float(w.detach()) == pytest.approx(expected, rel=1e-5)


def test_loss_recipe_keys_override_train_for_the_transfer():
    train = {"lr": 0.001, "optimizer": "adam", "schedule": "constant"}
    recipe = transfer_recipe(train, {"weight": 1.0, "optimizer": "sgd", "lr": 0.01, "schedule": "inverse"})
    assert (recipe["optimizer"], recipe["lr"], recipe["schedule"]) == ("sgd", 0.01, "inverse")
    assert transfer_recipe(train, {"weight": 1.0})["optimizer"] == "adam"


def _ctx(source, target, steps=6, labeled=None, bn_batches=0, lr=0.01):
    return TransferContext(
        source_state=None, source_train=source, target_labeled=labeled, target_unlabeled=target.x, num_classes=3,
        shots=0, steps=steps, lr=lr, batch_size=16, device=torch.device("cpu"), generator=torch.Generator().manual_seed(0),
        augment=lambda x: x, log=lambda msg: None, recipe=recipe_of({"lr": lr}), bn_batches=bn_batches,
    )


def _setup(registry):
    ds = registry.get("datasets", "toy").obj()
    src, tgt = ds.load("a"), ds.load("b")
    torch.manual_seed(0)
    model = build_model(registry.get("backbones", "smallcnn"), (1, 8, 8), 3, {"width": 8})
    return src, tgt, model


def test_discriminator_trains_at_the_heads_rate_under_finetune(registry):
    src, tgt, model = _setup(registry)
    strategy = registry.get("strategies", "finetune").obj(backbone_lr_scale=0.1)
    loss = registry.get("adaptation_losses", "dann").obj()
    ctx = _ctx(src.train, tgt.train, steps=2)
    loss.setup(model.backbone.out_features, 3, ctx)
    stats = transfer(model, strategy, loss, ctx)
    backbone_lr, head_lr, discriminator_lr = stats.lr_groups[0]["lrs"]
    assert backbone_lr == pytest.approx(0.001) and head_lr == pytest.approx(0.01)
    assert discriminator_lr == head_lr  # not groups[0]'s (the backbone's) rate


def test_an_owned_module_with_lr_scale_trains_at_lr_times_it(registry):
    src, tgt, model = _setup(registry)
    dann = registry.get("adaptation_losses", "dann").obj
    loss = type("ScaledDANN", (dann,), {"defaults": {**dann.defaults, "lr_scale": 0.5}})()
    ctx = _ctx(src.train, tgt.train, steps=1)
    loss.setup(model.backbone.out_features, 3, ctx)
    stats = transfer(model, registry.get("strategies", "finetune").obj(), loss, ctx)
    assert stats.lr_groups[0]["lrs"][-1] == pytest.approx(0.5 * ctx.recipe["lr"])


def test_control_has_no_adaptation_term_but_passes_target_batches(registry):
    src, tgt, model = _setup(registry)
    seen = []
    model.backbone.register_forward_hook(lambda module, args, out: seen.append(len(args[0])))
    control = registry.get("adaptation_losses", "control").obj()
    stats = transfer(model, registry.get("strategies", "finetune").obj(), control, _ctx(src.train, tgt.train, steps=3))
    assert "adaptation" not in stats.last_terms and "source_ce" in stats.last_terms
    assert seen and all(n == 32 for n in seen)  # 16 source + 16 unlabeled target every step
    # and it trains in the same loop, with the same recipe, as the first-party adaptation losses
    for name in ("dann", "cdan", "mmd", "coral", "entropy", "contrastive"):
        assert transfer_recipe({}, registry.get("adaptation_losses", name).defaults) == transfer_recipe({}, control.hparams)


def test_adabn_changes_batchnorm_statistics_and_no_weight(registry):
    src, tgt, model = _setup(registry)
    weights = {k: v.clone() for k, v in model.named_parameters()}
    buffers = {k: v.clone() for k, v in model.named_buffers() if "running" in k}
    adabn = registry.get("adaptation_losses", "adabn").obj()
    stats = transfer(model, registry.get("strategies", "finetune").obj(), adabn, _ctx(src.train, tgt.train, bn_batches=5))
    assert all(torch.equal(weights[k], v) for k, v in model.named_parameters())
    assert buffers and all(not torch.equal(buffers[k], v) for k, v in model.named_buffers() if k in buffers)
    assert stats.phases[0]["steps"] == 0 and stats.bn_recalibration["examples"] == 5 * 16
    # the statistics are the target's: the first BatchNorm's mean is its input's channel mean on target data
    first_bn = batchnorm_layers(model, only_training=False)[0]
    captured = []
    handle = first_bn.register_forward_hook(lambda m, args, out: captured.append(args[0]))
    model.eval()
    with torch.no_grad():
        model(tgt.train.x)
    handle.remove()
    channel_mean = captured[0].mean(dim=(0, 2, 3))
    assert torch.allclose(first_bn.running_mean, channel_mean, atol=0.15 * float(channel_mean.abs().max()) + 1e-3)


def test_recalibration_leaves_frozen_layers_bit_identical(registry):
    src, tgt, model = _setup(registry)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    transfer(model, registry.get("strategies", "linear-probe").obj(), registry.get("adaptation_losses", "none").obj(),
             _ctx(src.train, tgt.train, labeled=tgt.train, bn_batches=5))
    assert all(torch.equal(before[k], v) for k, v in model.backbone.state_dict().items())


def test_recalibrate_sets_exact_statistics():
    bn = nn.BatchNorm1d(3)
    model = nn.Sequential(bn)
    batches = [torch.randn(50, 3) * 2 + 5 for _ in range(4)]
    model.eval()
    recalibrate(model, [bn], batches)
    data = torch.cat(batches)
    assert torch.allclose(bn.running_mean, data.mean(0), atol=1e-5)
    assert torch.allclose(bn.running_var, torch.stack([b.var(0) for b in batches]).mean(0), atol=1e-4)
    assert bn.momentum == 0.1 and not bn.training


def test_batch_statistics_accuracy_changes_nothing():
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2)).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    acc = batch_statistics_accuracy(model, torch.randn(40, 4), torch.randint(0, 2, (40,)), batch_size=16)
    assert 0.0 <= acc <= 1.0
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert batch_statistics_accuracy(nn.Linear(4, 2), torch.randn(5, 4), torch.zeros(5, dtype=torch.long)) is None
