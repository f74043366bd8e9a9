"""Gradient reversal, shared by the adversarial losses (not a plugin itself)."""

import math

import torch
from torch import nn


class _ReverseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, coeff):
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.coeff * grad, None


def reverse_gradient(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """Identity in the forward pass; multiplies the gradient by ``-coeff`` in the backward pass."""
    return _ReverseGrad.apply(x, float(coeff))


class GradientReversal(nn.Module):
    """Module form of :func:`reverse_gradient` with a settable coefficient."""

    def __init__(self, coeff: float = 1.0):
        super().__init__()
        self.coeff = coeff

    def forward(self, x):
        return reverse_gradient(x, self.coeff)


def dann_schedule(progress: float, gamma: float = 10.0) -> float:
    """Ganin & Lempitsky's ramp 2/(1+exp(-gamma*p)) - 1 from 0 to ~1 over training."""
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0
