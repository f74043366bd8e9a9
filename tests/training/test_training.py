import torch

from tlbench.plugin.contracts import AdaptationBatch, Split, TransferContext
from tlbench.training.model import build_model
from tlbench.training.loop import accuracy, pretrain_source, transfer


def _ctx(model, source, target, shots_split, steps=15):
    gen = torch.Generator().manual_seed(0)
    return TransferContext(
        source_state={k: v.clone() for k, v in model.state_dict().items()},
        source_train=source,
        target_labeled=shots_split,
        target_unlabeled=target.x,
        num_classes=3,
        shots=10,
        steps=steps,
        lr=0.01,
        batch_size=16,
        device=torch.device("cpu"),
        generator=gen,
        augment=lambda x: x,
        log=lambda msg: None,
    )


def _toy(registry):
    ds = registry.get("datasets", "toy").obj()
    return ds.load("a"), ds.load("b")


def _model(registry):
    torch.manual_seed(0)
    return build_model(registry.get("backbones", "smallcnn"), (1, 8, 8), 3, {"width": 8})


def test_linear_probe_leaves_backbone_bit_identical(registry):
    src, tgt = _toy(registry)
    model = _model(registry)
    pretrain_source(model, src.train, 1, 16, 0.01, torch.Generator().manual_seed(1))
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head_before = model.head.weight.clone()
    strategy = registry.get("strategies", "linear-probe").obj()
    loss = registry.get("adaptation_losses", "dann").obj()
    ctx = _ctx(model, src.train, tgt.train, tgt.train)
    loss.setup(model.backbone.out_features, 3, ctx)
    transfer(model, strategy, loss, ctx)
    after = model.backbone.state_dict()
    assert before.keys() == after.keys()
    for key in before:  # parameters and BatchNorm buffers alike
        assert torch.equal(before[key], after[key]), key
    assert not torch.equal(head_before, model.head.weight)


def test_finetune_moves_the_backbone_and_learns(registry):
    src, tgt = _toy(registry)
    model = _model(registry)
    before = [p.clone() for p in model.backbone.parameters()]
    strategy = registry.get("strategies", "finetune").obj()
    loss = registry.get("adaptation_losses", "none").obj()
    transfer(model, strategy, loss, _ctx(model, src.train, tgt.train, tgt.train, steps=40))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.backbone.parameters()))
    assert accuracy(model, tgt.test) > 0.8


def test_dann_trains_its_discriminator(registry):
    src, tgt = _toy(registry)
    model = _model(registry)
    loss = registry.get("adaptation_losses", "dann").obj()
    ctx = _ctx(model, src.train, tgt.train, None)
    loss.setup(model.backbone.out_features, 3, ctx)
    disc_before = [p.clone() for p in loss.parameters()]
    stats = transfer(model, registry.get("strategies", "finetune").obj(), loss, ctx)
    assert "adaptation" in stats.last_terms and "target_ce" not in stats.last_terms
    assert all(not torch.equal(a, b) for a, b in zip(disc_before, loss.parameters()))
    # the loss's parameters are not part of the exported model
    assert not any(k.startswith("discriminator") for k in model.state_dict())


def test_gradient_reversal_flips_and_scales_the_gradient():
    from tlbench_plugins.losses.grl import dann_schedule, reverse_gradient

    x = torch.randn(5, 4, requires_grad=True)
    (reverse_gradient(x, 0.3) * torch.arange(4.0)).sum().backward()
    assert torch.allclose(x.grad, -0.3 * torch.arange(4.0).expand(5, 4))
    y = torch.randn(3, requires_grad=True)
    assert torch.equal(reverse_gradient(y, 1.0), y)
    assert dann_schedule(0.0) == 0.0 and 0.99 < dann_schedule(1.0) < 1.0


def test_scratch_does_not_start_from_source(registry):
    assert registry.get("strategies", "scratch").obj.init_from_source is False
    assert registry.get("strategies", "finetune").obj.init_from_source is True
