"""Sequence backbones: `lstm`, `gru` (stacked recurrent nets) and `cnn1d` (a dilated 1-D CNN).

All take ``(batch, time, features)`` float tensors and return ``(batch, out_features)``; the time
axis may have any length, in torch and in the exported ONNX model alike.
"""

from __future__ import annotations

import torch
from torch import nn

from tlbench import hookimpl
from tlbench.plugin.contracts import SEQUENCE
from tlbench.plugin.errors import UserError

POOLINGS = ("last", "mean")


def _check_shape(name: str, input_shape) -> int:
    """The feature count of a ``(time, features)`` input shape; anything else is a UserError."""
    if len(input_shape) != 2:
        raise UserError(f"{name} takes (time, features) sequences, got input shape {tuple(input_shape)}")
    return int(input_shape[1])


def _check_choice(name: str, option: str, value, choices) -> None:
    if value not in choices:
        raise UserError(f"{name} option `{option}` must be one of {', '.join(map(repr, choices))}, got {value!r}")


def _check_positive(name: str, **values) -> None:
    for option, value in values.items():
        if value < 1:
            raise UserError(f"{name} option `{option}` must be at least 1, got {value!r}")


class RecurrentBackbone(nn.Module):
    """A stacked (optionally bidirectional) LSTM or GRU over ``(batch, time, features)``.

    Features are the top layer's final hidden state (``pooling="last"``; both directions
    concatenated when bidirectional) or its outputs averaged over time (``pooling="mean"``).
    """

    CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}

    def __init__(self, input_shape, cell: str = "lstm", hidden: int = 64, layers: int = 2,
                 bidirectional: bool = False, pooling: str = "last", dropout: float = 0.0):
        super().__init__()
        features = _check_shape(cell, input_shape)
        _check_choice(cell, "pooling", pooling, POOLINGS)
        _check_positive(cell, hidden=hidden, layers=layers)
        if not 0.0 <= dropout < 1.0:
            raise UserError(f"{cell} option `dropout` must be in [0, 1), got {dropout!r}")
        self.pooling = pooling
        self.directions = 2 if bidirectional else 1
        self.rnn = self.CELLS[cell](
            features, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.out_features = hidden * self.directions

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs, state = self.rnn(x)
        if self.pooling == "mean":
            return outputs.mean(dim=1)
        hidden = state[0] if isinstance(state, tuple) else state  # LSTM: (h_n, c_n); GRU: h_n
        # h_n is (layers * directions, batch, hidden): the top layer's directions are the last rows.
        top = hidden[-self.directions :]
        return top.transpose(0, 1).reshape(x.shape[0], self.out_features)


def lstm(input_shape, **options) -> RecurrentBackbone:
    """A stacked LSTM feature extractor."""
    return RecurrentBackbone(input_shape, "lstm", **options)


def gru(input_shape, **options) -> RecurrentBackbone:
    """A stacked GRU feature extractor."""
    return RecurrentBackbone(input_shape, "gru", **options)


class _Residual1d(nn.Module):
    """conv-bn-relu-conv-bn with a dilated kernel plus a (1x1-projected) skip connection."""

    def __init__(self, cin: int, cout: int, kernel_size: int, dilation: int):
        super().__init__()
        pad = dilation * (kernel_size - 1) // 2
        self.body = nn.Sequential(
            nn.Conv1d(cin, cout, kernel_size, padding=pad, dilation=dilation, bias=False),
            nn.BatchNorm1d(cout),
            nn.ReLU(inplace=True),
            nn.Conv1d(cout, cout, kernel_size, padding=pad, dilation=dilation, bias=False),
            nn.BatchNorm1d(cout),
        )
        self.skip = nn.Identity() if cin == cout else nn.Conv1d(cin, cout, 1, bias=False)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.body(x) + self.skip(x))


class CNN1d(nn.Module):
    """Residual 1-D convolutions with dilations 1, 2, 4, ... (a non-causal TCN), then global
    average (``pooling="mean"``) or max (``pooling="max"``) pooling over time."""

    def __init__(self, input_shape, width: int = 32, blocks: int = 3, kernel_size: int = 5, pooling: str = "mean"):
        super().__init__()
        features = _check_shape("cnn1d", input_shape)
        _check_choice("cnn1d", "pooling", pooling, ("mean", "max"))
        _check_positive("cnn1d", width=width, blocks=blocks, kernel_size=kernel_size)
        if kernel_size % 2 == 0:
            raise UserError(f"cnn1d option `kernel_size` must be odd (keeps the length), got {kernel_size}")
        layers, cin = [], features
        for i in range(blocks):
            layers.append(_Residual1d(cin, width, kernel_size, 2**i))
            cin = width
        self.blocks = nn.Sequential(*layers)
        self.pooling = pooling
        self.out_features = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(x.transpose(1, 2))  # (batch, channels, time)
        return h.amax(dim=2) if self.pooling == "max" else h.mean(dim=2)


RNN_DEFAULTS = {"hidden": 64, "layers": 2, "bidirectional": False, "pooling": "last", "dropout": 0.0}
RNN_RANGES = {"hidden": (1, 8192), "layers": (1, 64), "dropout": (0.0, 0.999)}


@hookimpl
def register_backbones(register):
    register("lstm", lstm, modality=SEQUENCE, defaults=dict(RNN_DEFAULTS),
             option_ranges=RNN_RANGES, option_choices={"pooling": POOLINGS},
             description="stacked LSTM; pooling last|mean, optionally bidirectional")
    register("gru", gru, modality=SEQUENCE, defaults=dict(RNN_DEFAULTS),
             option_ranges=RNN_RANGES, option_choices={"pooling": POOLINGS},
             description="stacked GRU; pooling last|mean, optionally bidirectional")
    register("cnn1d", CNN1d, modality=SEQUENCE,
             defaults={"width": 32, "blocks": 3, "kernel_size": 5, "pooling": "mean"},
             option_ranges={"width": (1, 4096), "blocks": (1, 64), "kernel_size": (1, 255)},
             option_choices={"pooling": ("mean", "max")},
             description="residual dilated 1-D CNN (TCN-style), global pooling over time")
