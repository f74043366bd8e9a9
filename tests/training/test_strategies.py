"""Each transfer strategy does what its name says (toy data, tiny models, a few steps)."""

import json

import pytest
import torch
from torch import nn

from conftest import FAST_TRAIN, TOY_PLUGINS, read_results, run_cli
from tlbench.plugin.contracts import Split, TransferContext
from tlbench.plugin.errors import UserError
from tlbench.grid import expand
from tlbench.training.model import build_model
from tlbench.training.stages import FALLBACK_STAGES, backbone_stages
from tlbench.training.loop import pretrain_source, transfer

LR = 0.01


def _toy(registry):
    ds = registry.get("datasets", "toy").obj()
    return ds.load("a"), ds.load("b")


def _source_model(registry, src):
    """A smallcnn (width 8) trained on toy:a, so BatchNorm statistics are not at their init."""
    torch.manual_seed(0)
    model = build_model(registry.get("backbones", "smallcnn"), (1, 8, 8), 3, {"width": 8})
    pretrain_source(model, src.train, 1, 16, LR, torch.Generator().manual_seed(1))
    return model


def _ctx(model, source, target_x, labeled, steps=12):
    return TransferContext(
        source_state={k: v.clone() for k, v in model.state_dict().items()},
        source_train=source,
        target_labeled=labeled,
        target_unlabeled=target_x,
        num_classes=3,
        shots=5,
        steps=steps,
        lr=LR,
        batch_size=16,
        device=torch.device("cpu"),
        generator=torch.Generator().manual_seed(0),
        augment=lambda x: x,
        log=lambda msg: None,
    )


def _run(registry, name, model, ctx, **hparams):
    strategy = registry.get("strategies", name).obj(**hparams)
    loss = registry.get("adaptation_losses", "none").obj()
    stats = transfer(model, strategy, loss, ctx)
    return strategy, stats


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(before, after, prefix):
    keys = [k for k in before if k.startswith(prefix)]
    assert keys, prefix
    return {k: not torch.equal(before[k], after[k]) for k in keys}


# -- partial ---------------------------------------------------------------------------------

def test_partial_keeps_frozen_stages_bit_identical_and_trains_the_rest(registry):
    src, tgt = _toy(registry)
    model = _source_model(registry, src)
    before = _snapshot(model)
    _run(registry, "partial", model, _ctx(model, src.train, tgt.train.x, tgt.train), freeze=2.0)
    after = model.state_dict()
    # smallcnn stages: features[0:4], features[4:8], features[8:]; the first two are frozen
    for i in (0, 1):  # conv and BatchNorm of stage 1; 4, 5 of stage 2: weights, running stats, counters
        assert not any(_changed(before, after, f"backbone.features.{i}.").values())
        assert not any(_changed(before, after, f"backbone.features.{i + 4}.").values())
    assert all(_changed(before, after, "backbone.features.8.").values())  # conv + BN of stage 3 moved
    assert all(_changed(before, after, "head.").values())


def test_partial_depth_option(registry):
    from tlbench_plugins.backbones.smallcnn import SmallCNN
    from tlbench_plugins.strategies.partial import frozen_stage_count

    backbone = SmallCNN((1, 8, 8), width=4)
    assert frozen_stage_count(-1.0, backbone, 3) == 2  # smallcnn's declared default
    assert frozen_stage_count(0.0, backbone, 3) == 0
    assert frozen_stage_count(0.34, backbone, 3) == 1  # a fraction of the stages
    assert frozen_stage_count(3.0, backbone, 3) == 3
    assert frozen_stage_count(-1.0, nn.Sequential(nn.Linear(2, 2)), 4) == 2  # half, rounded up
    with pytest.raises(UserError, match="whole number of stages"):
        expand(_grid(strategy=["partial"], set={"partial": {"freeze": 2.5}}), registry)


# -- l2sp ------------------------------------------------------------------------------------

def _distance(model, state):
    return sum(((p.detach() - state[f"backbone.{n}"]) ** 2).sum() for n, p in model.backbone.named_parameters()) ** 0.5


def test_l2sp_with_huge_alpha_stays_at_the_source_while_finetune_moves(registry):
    src, tgt = _toy(registry)
    moved = {}
    for name, hparams in (("finetune", {}), ("l2sp", {"alpha": 1e6})):
        model = _source_model(registry, src)
        ctx = _ctx(model, src.train, tgt.train.x, tgt.train, steps=30)
        _run(registry, name, model, ctx, **hparams)
        moved[name] = float(_distance(model, ctx.source_state))
        if name == "l2sp":  # no weight strays even a fifth of one backbone Adam step (lr * 0.1)
            worst = max(float((p.detach() - ctx.source_state[f"backbone.{n}"]).abs().max())
                        for n, p in model.backbone.named_parameters())
            assert worst < 0.2 * LR * 0.1
    assert moved["l2sp"] < 0.01 * moved["finetune"], moved  # measured: 0.0011 vs 0.95


def test_l2sp_penalty_is_the_formula(registry):
    src, tgt = _toy(registry)
    model = _source_model(registry, src)
    strategy = registry.get("strategies", "l2sp").obj(alpha=0.3, beta=0.05)
    strategy.setup(model, _ctx(model, src.train, tgt.train.x, tgt.train))
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(0.01)
    n_backbone = sum(p.numel() for p in model.backbone.parameters())
    head_sq = sum(float((p.detach() ** 2).sum()) for p in model.head.parameters())
    expected = 0.5 * 0.3 * n_backbone * 0.01**2 + 0.5 * 0.05 * head_sq
    assert float(strategy.regulariser(model).detach()) == pytest.approx(expected, rel=1e-4)


# -- lp-ft -----------------------------------------------------------------------------------

def test_lpft_phase_one_changes_only_the_head(registry):
    src, tgt = _toy(registry)
    model = _source_model(registry, src)
    before = _snapshot(model)
    # lp_fraction = 1: phase 2 gets zero steps, so what we see is the state after phase 1
    _, stats = _run(registry, "lp-ft", model, _ctx(model, src.train, tgt.train.x, tgt.train), lp_fraction=1.0)
    assert [(p["name"], p["steps"]) for p in stats.phases] == [("linear-probe", 12), ("finetune", 0)]
    assert not any(_changed(before, model.state_dict(), "backbone.").values())  # BN buffers included
    assert all(_changed(before, model.state_dict(), "head.").values())


def test_lpft_phase_two_fine_tunes_from_the_probed_head(registry):
    src, tgt = _toy(registry)
    model = _source_model(registry, src)
    before = _snapshot(model)
    _, stats = _run(registry, "lp-ft", model, _ctx(model, src.train, tgt.train.x, tgt.train), lp_fraction=0.25)
    assert [(p["name"], p["steps"]) for p in stats.phases] == [("linear-probe", 3), ("finetune", 9)]
    assert all(_changed(before, model.state_dict(), "backbone.features.0.weight").values())


# -- multitask and instance weighting --------------------------------------------------------

def test_multitask_trains_a_source_head_on_source_batches(registry):
    src, tgt = _toy(registry)
    model = _source_model(registry, src)
    ctx = _ctx(model, src.train, tgt.train.x, tgt.train)
    strategy = registry.get("strategies", "multitask").obj()
    strategy.setup(model, ctx)  # the source head starts as the source model's head
    assert torch.equal(strategy.source_head.weight, ctx.source_state["head.weight"])
    strategy = registry.get("strategies", "multitask").obj()
    stats = transfer(model, strategy, registry.get("adaptation_losses", "none").obj(), ctx)
    assert strategy.source_batches == 12 and stats.samples == 12 * (16 + 16)  # target shots + source
    assert {"target_ce", "source"} <= set(stats.last_terms)
    assert not torch.equal(strategy.source_head.weight, ctx.source_state["head.weight"])  # it trained
    assert not torch.equal(strategy.source_head.weight, model.head.weight)  # two distinct heads
    assert not any("source_head" in k for k in model.state_dict())  # only the target head is exported


def test_instance_weights_favour_target_like_source_examples(registry):
    src, tgt = _toy(registry)
    model = _source_model(registry, src)
    # labeled source: toy:a (unshifted) followed by toy:b-like (shifted) examples
    mixed = Split(torch.cat([src.train.x, tgt.test.x]), torch.cat([src.train.y, tgt.test.y]))
    ctx = _ctx(model, mixed, tgt.train.x, Split(tgt.train.x[:15], tgt.train.y[:15]))
    strategy, stats = _run(registry, "instance-weighting", model, ctx)
    weights = strategy.weights
    n_a = len(src.train)
    assert weights.shape == (len(mixed),) and float(weights.mean()) == pytest.approx(1.0, rel=1e-4)
    assert float(weights.std()) > 0.3  # not uniform
    assert float(weights[n_a:].mean()) > 3 * float(weights[:n_a].mean())
    assert strategy.source_batches == 12 and "source" in stats.last_terms


def test_instance_weighting_weights_the_source_loss(registry):
    src, tgt = _toy(registry)
    model = _source_model(registry, src)
    strategy = registry.get("strategies", "instance-weighting").obj()
    strategy.setup(model, _ctx(model, src.train, tgt.train.x, tgt.train))
    features = model.backbone(src.train.x[:8])
    strategy.weights = torch.zeros(len(src.train))
    assert float(strategy.source_loss(model, features, src.train.y[:8], torch.arange(8)).detach()) == 0.0
    strategy.weights = torch.ones(len(src.train))
    plain = nn.functional.cross_entropy(model.head(features), src.train.y[:8])
    assert float(strategy.source_loss(model, features, src.train.y[:8], torch.arange(8)).detach()) == pytest.approx(float(plain.detach()))


# -- discriminative learning rates -----------------------------------------------------------

def test_layerwise_decay_gives_lower_layers_smaller_steps(registry):
    src, tgt = _toy(registry)
    model = _source_model(registry, src)
    before = _snapshot(model)
    strategy = registry.get("strategies", "discriminative-lr").obj(decay=0.5)
    ctx = _ctx(model, src.train, tgt.train.x, tgt.train, steps=1)
    strategy.setup(model, ctx)
    lrs = [g["lr"] for g in strategy.phases(model, ctx)[0].param_groups]
    assert lrs == pytest.approx([LR, LR / 2, LR / 4, LR / 8])  # head, then stages top to bottom
    transfer(model, strategy, registry.get("adaptation_losses", "none").obj(), ctx)
    after = model.state_dict()

    def step(key):  # Adam's first step moves each weight by about its group's lr
        return float((after[key] - before[key]).abs().max())

    conv_steps = [step("backbone.features.0.weight"), step("backbone.features.4.weight"), step("backbone.features.8.weight")]
    assert conv_steps == pytest.approx([LR / 8, LR / 4, LR / 2], rel=0.05)
    assert step("head.weight") == pytest.approx(LR, rel=0.05)


# -- the depth convention and its fallback ---------------------------------------------------

def test_stages_cover_every_parameter_once_for_any_backbone(registry):
    from tlbench_plugins.backbones.sequence import lstm

    plain = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 3),
                          nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 3), nn.Flatten())
    resnet = build_model(registry.get("backbones", "resnet18"), (1, 16, 16), 3, {}).backbone
    rnn = lstm((12, 3), hidden=8, layers=2)
    for backbone, expected in ((plain, FALLBACK_STAGES), (resnet, 5), (rnn, 2)):
        stages = backbone_stages(backbone)
        assert len(stages) == expected
        flat = [id(p) for stage in stages for p in stage]
        assert sorted(flat) == sorted(id(p) for p in backbone.parameters())  # each exactly once
    first = backbone_stages(plain)[0]
    assert first[0] is plain[0].weight and any(p is plain[1].weight for p in first)  # BN joins its conv, input first
    assert backbone_stages(resnet)[0][0] is resnet.net.conv1.weight
    assert all("_l1" not in n for n, p in rnn.named_parameters() if any(p is q for q in backbone_stages(rnn)[0]))


# -- hyperparameters through the CLI ---------------------------------------------------------

def _grid(**overrides):
    config = {"backbone": ["smallcnn"], "source": ["toy:a"], "target": ["toy:b"], "strategy": ["l2sp"],
              "loss": ["none"], "shots": [5], "seeds": [0]}
    config.update(overrides)
    return config


def test_strategy_hyperparameters_reach_the_run_id_and_result(registry, tmp_path):
    default = expand(_grid(), registry)[0]
    tuned = expand(_grid(set={"l2sp": {"alpha": 0.5}}), registry)[0]
    assert tuned.strategy_options["alpha"] == 0.5 and default.strategy_options["alpha"] != 0.5
    assert tuned.run_id != default.run_id

    proc = run_cli("--plugins-dir", TOY_PLUGINS, "run", "--backbone", "smallcnn", "--source", "toy:a",
                   "--target", "toy:b", "--strategy", "l2sp,lp-ft,instance-weighting,partial", "--loss", "none",
                   "--shots", "5", "--results-dir", tmp_path, "--set", "smallcnn.width=8", "--set", "l2sp.alpha=0.5",
                   "--set", "lp-ft.lp_fraction=0.25", "--set", "train.int8=false", *FAST_TRAIN)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = {r["strategy"]: r for r in read_results(tmp_path)}
    assert results["l2sp"]["strategy_options"]["alpha"] == 0.5
    assert results["lp-ft"]["strategy_options"]["lp_fraction"] == 0.25
    assert [(p["name"], p["steps"]) for p in results["lp-ft"]["train_phases"]] == [("linear-probe", 1), ("finetune", 3)]
    assert "phase linear-probe" in proc.stdout and "phase finetune" in proc.stdout
    assert json.loads(json.dumps(results["l2sp"]["strategy_options"])) == {
        "alpha": 0.5, "beta": 0.01, "backbone_lr_scale": 0.1, "reset_head": False}
    # what a strategy did is recorded beside its options
    weighting = results["instance-weighting"]["strategy_summary"]
    assert weighting["source_batches"] == 4 and weighting["weight_min"] < 1 < weighting["weight_max"]
    assert 0 < weighting["effective_sample_size"] < weighting["source_examples"]
    assert results["partial"]["strategy_summary"]["frozen_stages"] >= 1
    assert results["l2sp"]["strategy_summary"] == {}

    bad = run_cli("--plugins-dir", TOY_PLUGINS, "run", "--backbone", "smallcnn", "--source", "toy:a",
                  "--target", "toy:b", "--strategy", "discriminative-lr", "--loss", "none", "--shots", "5",
                  "--results-dir", tmp_path / "bad", "--set", "discriminative-lr.decay=1.5")
    assert bad.returncode == 2 and "decay" in bad.stderr + bad.stdout
    assert "Traceback" not in bad.stderr
