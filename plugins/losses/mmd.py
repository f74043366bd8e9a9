"""`mmd`: multi-kernel maximum mean discrepancy between source and target features (DAN,
Long et al., 2015), with a family of Gaussian kernels and the unbiased estimate.

Conventions (tests/training/test_loss_references.py re-derives them): the squared MMD's
quadratic-time U-statistic, pairs i != j only (the DAN paper uses a linear-time estimate; the
much-copied PyTorch ``MMD_loss`` of jindongwang/transferlearning is the biased V-statistic,
i = j included); each kernel is ``exp(-|a - b|^2 / s)`` (no factor 2), ``s = base *
kernel_mul^k`` for ``k`` centred on 0; the kernels are averaged (that port sums them:
``kernel_num`` times larger); ``base`` is the mean squared distance over the pooled batch's
off-diagonal pairs, held constant (no gradient), unless ``bandwidth`` fixes it.
"""

import torch

from tlbench import hookimpl
from tlbench.plugin.contracts import AdaptationLoss

from .recipe import RECIPE_SPACE, UDA_RECIPE, weight_space


def squared_distances(z: torch.Tensor) -> torch.Tensor:
    """Pairwise squared Euclidean distances of the rows of ``z`` (gradient-safe at zero)."""
    norms = (z * z).sum(1)
    return (norms[:, None] + norms[None, :] - 2.0 * z @ z.T).clamp_min(0.0)


def multi_kernel(z: torch.Tensor, bandwidth: float = 0.0, kernel_mul: float = 2.0, kernel_num: int = 5) -> torch.Tensor:
    """Mean of ``kernel_num`` Gaussian kernels exp(-d²/σ²) with σ² = base · kernel_mul^k, k centred
    on 0. ``bandwidth`` is the base σ²; 0 takes the mean pairwise squared distance of ``z`` (the
    DAN heuristic), treated as a constant so the features cannot inflate it to shrink the loss."""
    d2 = squared_distances(z)
    n = len(z)
    if bandwidth > 0:
        base = torch.tensor(float(bandwidth), device=z.device, dtype=z.dtype)
    else:
        base = d2.detach().sum() / max(n * n - n, 1)
        base = base.clamp_min(1e-12)
    powers = torch.arange(kernel_num, device=z.device, dtype=z.dtype) - (kernel_num - 1) / 2.0
    sigmas = base * kernel_mul**powers
    return torch.exp(-d2[None] / sigmas[:, None, None]).mean(0)


def mk_mmd(source: torch.Tensor, target: torch.Tensor, bandwidth: float = 0.0, kernel_mul: float = 2.0, kernel_num: int = 5) -> torch.Tensor:
    """Unbiased squared MMD (Gretton et al., 2012, the U-statistic over pairs i≠j) between equal
    numbers of source and target rows; larger batches are cut to the smaller size. Exactly 0 for
    identical samples, ~0 for two samples of one distribution, grows as the distributions part."""
    m = min(len(source), len(target))
    if m < 2:
        return source.sum() * 0.0
    k = multi_kernel(torch.cat([source[:m], target[:m]]), bandwidth, kernel_mul, kernel_num)
    xx, yy, xy = k[:m, :m], k[m:, m:], k[:m, m:]
    h = xx + yy - xy - xy.T
    off_diagonal = h.sum() - h.diagonal().sum()
    return off_diagonal / (m * (m - 1))


class MKMMD(AdaptationLoss):
    """Multi-kernel MMD on the backbone features (bandwidth 0 = mean-distance heuristic)."""

    defaults = {"weight": 1.0, "kernel_num": 5, "kernel_mul": 2.0, "bandwidth": 0.0, **UDA_RECIPE}
    option_ranges = {"weight": (0.0, 1000000.0), "kernel_num": (1, 64), "kernel_mul": (1.000001, 100.0), "bandwidth": (0.0, 1000000.0)}
    search_space = {**weight_space(0.1, 10.0), **RECIPE_SPACE}

    def forward(self, batch):
        h = self.hparams
        return mk_mmd(batch.source_features, batch.target_features, h["bandwidth"], h["kernel_mul"], h["kernel_num"])


@hookimpl
def register_adaptation_losses(register):
    register("mmd", MKMMD)
