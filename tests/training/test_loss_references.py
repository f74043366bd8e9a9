"""Every adaptation loss against its paper's formula, re-derived here in NumPy on small seeded
inputs (values and, for the adversarial losses, the gradients the features receive)."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.stats import entropy as scipy_entropy
from torch import nn

from tlbench.plugin.contracts import AdaptationBatch, Split, TransferContext
from tlbench.training.loop import transfer
from tlbench.training.model import TransferModel
from tlbench_plugins.losses.adabn import AdaBN
from tlbench_plugins.losses.cdan import CDAN
from tlbench_plugins.losses.contrastive import Contrastive, info_nce
from tlbench_plugins.losses.control import Control
from tlbench_plugins.losses.coral import CORAL
from tlbench_plugins.losses.dann import DANN
from tlbench_plugins.losses.entropy import EntropyMinimisation
from tlbench_plugins.losses.grl import GradientReversal
from tlbench_plugins.losses.mmd import MKMMD, mk_mmd
from tlbench_plugins.losses.none import NoAdaptation
from tlbench_plugins.strategies.basic import FineTune


def rand(seed, *shape, shift=0.0):
    return np.random.default_rng(seed).normal(size=shape) + shift


def t(a, grad=False):
    return torch.tensor(a, dtype=torch.float32, requires_grad=grad)


def softmax_np(logits):
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def batch_of(fs, ls, ft, lt, progress=0.5, **kw):
    return AdaptationBatch(fs, ls, ft, lt, kw.get("target_inputs"), kw.get("model"), kw.get("augment"), progress,
                           kw.get("source_inputs"))


# -- MMD (Long et al., 2015; Gretton et al., 2012) ---------------------------------------------------
def mmd_by_hand(xs, xt, bandwidth=0.0, mul=2.0, num=5, unbiased=True):
    """Squared MK-MMD: k = mean over the kernels exp(-|a - b|^2 / s) with s = base * mul^(k - (num-1)/2);
    base = the mean pairwise squared distance of the pooled 2m rows (i != j) unless given. Unbiased:
    the U-statistic over pairs i != j; biased: every pair (the V-statistic)."""
    m = min(len(xs), len(xt))
    x = np.concatenate([xs[:m], xt[:m]]).astype(np.float64)
    d2 = np.array([[np.sum((a - b) ** 2) for b in x] for a in x])
    base = bandwidth if bandwidth > 0 else (d2.sum() - np.trace(d2)) / (2 * m * (2 * m - 1))
    k = np.mean([np.exp(-d2 / (base * mul ** (i - (num - 1) / 2))) for i in range(num)], axis=0)
    total = 0.0
    for i in range(m):
        for j in range(m):
            if i != j or not unbiased:
                total += k[i, j] + k[m + i, m + j] - k[i, m + j] - k[j, m + i]
    return total / (m * (m - 1) if unbiased else m * m)


@pytest.mark.parametrize("sizes,options", [((6, 6), {}), ((7, 5), {}), ((6, 6), {"bandwidth": 2.0, "kernel_mul": 3.0, "kernel_num": 3})])
def test_mmd_equals_the_unbiased_multi_kernel_estimate(sizes, options):
    xs, xt = rand(0, sizes[0], 3), rand(1, sizes[1], 3, shift=0.7)
    args = (options.get("bandwidth", 0.0), options.get("kernel_mul", 2.0), options.get("kernel_num", 5))
    expected = mmd_by_hand(xs, xt, *args)
    assert float(mk_mmd(t(xs), t(xt), *args)) == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert float(MKMMD(**options)(batch_of(t(xs), None, t(xt), None))) == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert abs(mmd_by_hand(xs, xt, *args, unbiased=False) - expected) > 1e-2  # the convention is observable


# -- CORAL (Sun & Saenko, 2016) ------------------------------------------------------------------
def test_coral_equals_the_frobenius_distance_of_unbiased_covariances():
    xs, xt = rand(2, 10, 4), rand(3, 12, 4) * [1.0, 2.0, 0.5, 1.0]
    expected = np.sum((np.cov(xs, rowvar=False) - np.cov(xt, rowvar=False)) ** 2) / (4 * 4**2)
    assert float(CORAL()(batch_of(t(xs), None, t(xt), None))) == pytest.approx(expected, rel=1e-5)


# -- DANN (Ganin & Lempitsky, 2015) and CDAN (Long et al., 2018) ---------------------------------
def discriminator_by_hand(disc, x, y, w=None):
    """BCE-with-logits of the Linear-ReLU-(Dropout)-Linear discriminator (eval mode), averaged
    over rows with optional weights, and its gradient with respect to the inputs ``x``."""
    w1, b1 = disc[0].weight.detach().double().numpy(), disc[0].bias.detach().double().numpy()
    w2, b2 = disc[3].weight.detach().double().numpy(), disc[3].bias.detach().double().numpy()
    w = np.ones(len(x)) if w is None else w
    a = x @ w1.T + b1
    z = (np.maximum(a, 0) @ w2.T + b2)[:, 0]
    sig = 1 / (1 + np.exp(-z))
    loss = np.mean(w * -(y * np.log(sig) + (1 - y) * np.log(1 - sig)))
    dz = w * (sig - y) / len(x)
    dx = ((dz[:, None] @ w2) * (a > 0)) @ w1
    return loss, dx, dz


def ramp(progress, gamma=10.0):
    return 2 / (1 + math.exp(-gamma * progress)) - 1


@pytest.mark.parametrize("progress", [0.0, 0.3, 1.0])
def test_dann_equals_the_domain_bce_and_reverses_its_gradient(progress):
    loss = DANN(hidden=8)
    loss.setup(6, 3, None)
    loss.eval()  # no dropout
    fs, ft = rand(4, 5, 6), rand(5, 4, 6, shift=1.0)
    x, y = np.concatenate([fs, ft]).astype(np.float32).astype(np.float64), np.r_[np.ones(5), np.zeros(4)]
    expected, dx, dz = discriminator_by_hand(loss.discriminator, x, y)
    ts, tt = t(fs, grad=True), t(ft, grad=True)
    value = loss(batch_of(ts, None, tt, None, progress))
    value.backward()
    assert float(value) == pytest.approx(expected, rel=1e-5)
    # features: minus lambda(p) times the discriminator loss's gradient; the discriminator itself: not reversed
    assert np.allclose(torch.cat([ts.grad, tt.grad]).numpy(), -ramp(progress) * dx, atol=1e-6)
    assert float(loss.discriminator[3].bias.grad) == pytest.approx(dz.sum(), abs=1e-6)


def test_gradient_reversal_is_identity_forward_and_minus_coeff_backward():
    x = t(rand(6, 3, 2), grad=True)
    y = GradientReversal(0.25)(x)
    assert torch.equal(y, x)
    (y * t([[1.0, 2.0]] * 3)).sum().backward()
    assert torch.allclose(x.grad, t([[-0.25, -0.5]] * 3))


@pytest.mark.parametrize("conditioning", [True, False])
def test_cdan_equals_the_conditional_domain_bce_on_the_multilinear_map(conditioning):
    d, c = 4, 3
    loss = CDAN(hidden=8, entropy_conditioning=conditioning)
    loss.setup(d, c, None)
    loss.eval()
    fs, ft, logits = rand(7, 5, d), rand(8, 6, d, shift=0.5), rand(9, 11, c) * 2
    f = np.concatenate([fs, ft]).astype(np.float32).astype(np.float64)
    g = softmax_np(logits.astype(np.float32).astype(np.float64))
    tensor_map = (f[:, :, None] * g[:, None, :]).reshape(len(f), d * c)  # f (x) g, feature-major
    weights = None
    if conditioning:  # CDAN+E: 1 + exp(-H(g)), normalised to mean 1 over the batch
        weights = 1 + np.exp(-scipy_entropy(g, axis=1))
        weights = weights / weights.mean()
    expected, dmap, _ = discriminator_by_hand(loss.discriminator, tensor_map, np.r_[np.ones(5), np.zeros(6)], weights)
    ts, tt, tl = t(fs, grad=True), t(ft, grad=True), t(logits, grad=True)
    value = loss(batch_of(ts, tl[:5], tt, tl[5:], 0.4))
    value.backward()
    assert float(value) == pytest.approx(expected, rel=1e-5)
    feature_grad = np.einsum("nac,nc->na", dmap.reshape(len(f), d, c), g)
    assert np.allclose(torch.cat([ts.grad, tt.grad]).numpy(), -ramp(0.4) * feature_grad, atol=1e-6)
    assert tl.grad is None or float(tl.grad.abs().sum()) == 0.0  # g is conditioning only: no gradient


def test_cdan_random_projection_equals_the_papers_randomised_map():
    loss = CDAN(max_map_dim=8)
    loss.setup(4, 3, None)
    f, logits = rand(10, 5, 4), rand(11, 5, 3)
    rf, rg = loss.random_f.double().numpy(), loss.random_g.double().numpy()
    expected = (f @ rf) * (softmax_np(logits) @ rg) / math.sqrt(8)  # (R_f f) * (R_g g) / sqrt(dim)
    assert np.allclose(loss.discriminator_input(t(f), t(logits)).numpy(), expected, atol=1e-5)


# -- entropy minimisation (Grandvalet & Bengio, 2004) with SHOT's diversity term ---------------------
@pytest.mark.parametrize("diversity", [0.0, 1.0, 0.3])
def test_entropy_loss_equals_mean_entropy_minus_diversity_times_marginal_entropy(diversity):
    logits = rand(12, 9, 4) * 2
    p = softmax_np(logits)
    expected = scipy_entropy(p, axis=1).mean() - diversity * scipy_entropy(p.mean(axis=0))
    value = EntropyMinimisation(diversity=diversity)(batch_of(None, None, None, t(logits)))
    assert float(value) == pytest.approx(expected, rel=1e-5)


# -- contrastive: NT-Xent (Chen et al., 2020) ----------------------------------------------------
def nt_xent_by_hand(z1, z2, temperature):
    """Mean over the 2n anchors of -log(exp(s_ip / T) / sum_{k != i} exp(s_ik / T)), s = cosine."""
    z = np.concatenate([z1, z2])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z1)
    total = 0.0
    for i in range(2 * n):
        partner = (i + n) % (2 * n)
        others = [np.exp(z[i] @ z[k] / temperature) for k in range(2 * n) if k != i]
        total += -math.log(math.exp(z[i] @ z[partner] / temperature) / sum(others))
    return total / (2 * n)


def test_info_nce_equals_nt_xent_written_as_loops():
    z1, z2 = rand(13, 5, 3), rand(14, 5, 3)
    assert float(info_nce(t(z1), t(z2), 0.3)) == pytest.approx(nt_xent_by_hand(z1, z2, 0.3), rel=1e-5)


@pytest.mark.parametrize("include_source", [True, False])
def test_contrastive_loss_is_nt_xent_of_the_projected_views(include_source):
    torch.manual_seed(0)
    backbone = nn.Linear(3, 4).double()
    loss = Contrastive(projection_dim=2, include_source=include_source, temperature=0.5)
    loss.setup(4, 2, None)
    loss.double()
    noise = [rand(15, 7, 3) * 0.1, rand(16, 7, 3) * 0.1]  # view 1 and view 2 of the pooled inputs
    calls = []

    def augment(x):
        calls.append(len(calls))
        return x + torch.tensor(noise[len(calls) - 1][: len(x)])

    xs, xt = rand(17, 3, 3), rand(18, 4, 3)
    batch = batch_of(None, None, None, None, target_inputs=torch.tensor(xt), source_inputs=torch.tensor(xs),
                     model=SimpleNamespace(backbone=backbone), augment=augment)
    x = np.concatenate([xs, xt]) if include_source else xt

    def forward(v):  # backbone, then the 2-layer projection head
        w = lambda m: (m.weight.detach().numpy(), m.bias.detach().numpy())  # noqa: E731
        (wb, bb), (w1, b1), (w2, b2) = w(backbone), w(loss.projector[0]), w(loss.projector[2])
        return np.maximum((v @ wb.T + bb) @ w1.T + b1, 0) @ w2.T + b2

    expected = nt_xent_by_hand(forward(x + noise[0][: len(x)]), forward(x + noise[1][: len(x)]), 0.5)
    assert float(loss(batch)) == pytest.approx(expected, rel=1e-9)


# -- adabn (Li et al., 2016), control and none: what the training loop does with them ------------------
def tiny_context(model, source, target_x, shots=None, bn_batches=0):
    recipe = {"optimizer": "sgd", "lr": 0.5, "momentum": 0.0, "weight_decay": 0.0, "schedule": "constant", "warmup": 0.0}
    return TransferContext(
        source_state=None, source_train=source, target_labeled=shots, target_unlabeled=target_x, num_classes=3,
        shots=0 if shots is None else 2, steps=1, lr=0.5, batch_size=32, device=torch.device("cpu"),
        generator=torch.Generator().manual_seed(0), augment=lambda x: x, log=lambda msg: None, recipe=recipe,
        bn_batches=bn_batches)


def sgd_step_by_hand(model, x, y, lr_backbone, lr_head):
    """One SGD step on mean cross-entropy through Linear backbone -> Linear head, in NumPy."""
    w1, b1 = model.backbone.weight.detach().double().numpy(), model.backbone.bias.detach().double().numpy()
    w2, b2 = model.head.weight.detach().double().numpy(), model.head.bias.detach().double().numpy()
    f = x @ w1.T + b1
    dlogits = (softmax_np(f @ w2.T + b2) - np.eye(3)[y]) / len(x)
    df = dlogits @ w2
    ce = -np.mean(np.log(softmax_np(f @ w2.T + b2)[np.arange(len(y)), y]))
    return ce, {"backbone.weight": w1 - lr_backbone * df.T @ x, "backbone.bias": b1 - lr_backbone * df.sum(0),
                "head.weight": w2 - lr_head * dlogits.T @ f, "head.bias": b2 - lr_head * dlogits.sum(0)}


def linear_model():
    torch.manual_seed(1)
    return TransferModel(nn.Linear(4, 5), 3)


def test_control_adds_no_term_one_sgd_step_is_source_cross_entropy_only():
    model = linear_model()
    xs, ys = rand(19, 6, 4), np.array([0, 1, 2, 0, 1, 2])
    ce, expected = sgd_step_by_hand(model, xs.astype(np.float32).astype(np.float64), ys, 0.05, 0.5)
    assert Control()(batch_of(None, None, None, None)) is None
    stats = transfer(model, FineTune(), Control(), tiny_context(model, Split(t(xs), torch.tensor(ys)), t(rand(20, 5, 4))))
    assert stats.last_terms == {"source_ce": pytest.approx(ce, rel=1e-5)}
    for name, value in model.state_dict().items():
        assert np.allclose(value.numpy(), expected[name], atol=1e-6), name


def test_none_trains_on_the_labeled_shots_alone():
    model = linear_model()
    xl, yl = rand(21, 6, 4), np.array([2, 1, 0, 2, 1, 0])
    ce, expected = sgd_step_by_hand(model, xl.astype(np.float32).astype(np.float64), yl, 0.05, 0.5)
    assert NoAdaptation.needs_target_unlabeled is False
    source = Split(t(rand(22, 6, 4)), torch.tensor([0, 0, 0, 1, 1, 1]))
    stats = transfer(model, FineTune(), NoAdaptation(), tiny_context(model, source, t(rand(23, 5, 4)), Split(t(xl), torch.tensor(yl))))
    assert stats.last_terms == {"target_ce": pytest.approx(ce, rel=1e-5)}
    for name, value in model.state_dict().items():
        assert np.allclose(value.numpy(), expected[name], atol=1e-6), name


def test_adabn_keeps_the_weights_and_sets_batchnorm_to_target_statistics():
    torch.manual_seed(2)
    backbone = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5))
    backbone.out_features = 5
    model = TransferModel(backbone, 3)
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    xt = rand(24, 9, 4, shift=2.0)
    source = Split(t(rand(25, 6, 4)), torch.tensor([0, 1, 2] * 2))
    transfer(model, FineTune(), AdaBN(), tiny_context(model, source, t(xt), bn_batches=1))
    for name, value in weights.items():
        assert torch.equal(model.state_dict()[name], value), name
    pre_bn = xt.astype(np.float32).astype(np.float64) @ backbone[0].weight.detach().double().numpy().T \
        + backbone[0].bias.detach().double().numpy()
    assert np.allclose(backbone[1].running_mean.numpy(), pre_bn.mean(axis=0), atol=1e-5)
    assert np.allclose(backbone[1].running_var.numpy(), pre_bn.var(axis=0, ddof=1), rtol=1e-4)  # PyTorch: unbiased
