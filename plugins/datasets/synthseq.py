"""`synthseq`: synthetic six-channel "wearable sensor" activity recognition in four domains.

Each example is a 64-step window of a 3-axis accelerometer plus a 3-axis gyroscope
(channels ``ax ay az gx gy gz``, nominally 32 Hz, so 2 s). Six activity classes are built from
oscillators and motifs with per-example random frequency, amplitude, phase and tilt:

- ``rest``   slow low-amplitude sway around gravity;
- ``walk``   ~1.6-2.2 Hz vertical bounce with a harmonic, half-frequency gyro swing;
- ``run``    ~2.3-3.2 Hz, larger bounce and stronger harmonics;
- ``jump``   a train of sharp vertical impulses (a motif) every 0.6-0.9 s;
- ``wave``   arm oscillation on the gyroscope only, body still;
- ``cycle``  circular motion: ``ax``/``ay`` in quadrature, steady yaw rate on ``gz``.

Domains share the classes and differ the way real sensor deployments do:

- ``lab``      clean reference recording: unit gain, no offset, little noise, exact 32 Hz clock;
- ``field``    cheap sensor: a fixed per-channel gain (0.5-1.6x) and offset, 5x more noise;
- ``drift``    slow clock whose rate also drifts within the window (intervals 1.1-1.3x, growing
               by up to 35% over the window): frequencies look higher and chirp;
- ``permuted`` sensor mounted differently: channels permuted within the accelerometer and the
               gyroscope, two of them sign-flipped.

Everything is generated deterministically from fixed seeds (the same arrays on every machine
and call) with a fixed stratified 75/25 train/test split. All domains are normalised with the
per-channel mean/std of the ``lab`` training split, so the shifts are not normalised away.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from tlbench import hookimpl
from tlbench.plugin.contracts import SEQUENCE, Dataset, DomainData, Preprocessing, Split

CLASSES = ("rest", "walk", "run", "jump", "wave", "cycle")
DOMAINS = ("lab", "field", "drift", "permuted")
CHANNELS = ("ax", "ay", "az", "gx", "gy", "gz")
TIME_STEPS, RATE_HZ = 64, 32.0
PER_CLASS = 150
TEST_FRACTION = 0.25
SEED = 20261124
REFERENCE_DOMAIN = "lab"


def _u(rng, low, high, n):
    return rng.uniform(low, high, size=(n, 1))


def _activity(label: int, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Clean signals of ``len(t)`` examples of class ``label`` at times ``t`` (n, T) in seconds:
    returns (n, T, 6)."""
    n = t.shape[0]
    x = np.zeros(t.shape + (6,))
    phase = _u(rng, 0, 2 * np.pi, n)
    amp = _u(rng, 0.75, 1.3, n)
    two_pi = 2 * np.pi
    if label == 0:  # rest
        f = _u(rng, 0.2, 0.5, n)
        for c in range(6):
            x[..., c] = 0.12 * amp * np.sin(two_pi * f * t + phase + c)
    elif label in (1, 2):  # walk / run
        f = _u(rng, 1.6, 2.2, n) if label == 1 else _u(rng, 2.3, 3.2, n)
        a = 0.6 if label == 1 else 1.0
        h = 0.2 if label == 1 else 0.45
        w = two_pi * f * t + phase
        x[..., 2] = a * amp * (np.sin(w) + h * np.sin(2 * w))
        x[..., 0] = 0.35 * a * amp * np.sin(w + np.pi / 2)
        x[..., 1] = 0.15 * a * amp * np.sin(0.5 * w)
        x[..., 3] = 0.5 * a * amp * np.sin(0.5 * w + 0.3)
        x[..., 4] = 0.25 * a * amp * np.sin(w)
    elif label == 3:  # jump: impulse motif train
        period = _u(rng, 0.6, 0.9, n)
        start = rng.uniform(0, 1, size=(n, 1)) * period
        since = np.mod(t - start, period)
        bump = np.exp(-0.5 * (since / 0.05) ** 2) + np.exp(-0.5 * ((since - period) / 0.05) ** 2)
        x[..., 2] = 1.6 * amp * bump - 0.3 * amp * np.exp(-0.5 * ((since - 0.15) / 0.06) ** 2)
        x[..., 4] = 0.3 * amp * bump
    elif label == 4:  # wave: gyro-only arm oscillation
        f = _u(rng, 1.5, 2.5, n)
        w = two_pi * f * t + phase
        x[..., 3] = 0.9 * amp * np.sin(w)
        x[..., 5] = 0.5 * amp * np.sin(w + 1.0)
        x[..., 0] = 0.08 * amp * np.sin(w)
    else:  # cycle: quadrature horizontal motion plus yaw rate
        f = _u(rng, 1.0, 1.6, n)
        w = two_pi * f * t + phase
        x[..., 0] = 0.5 * amp * np.sin(w)
        x[..., 1] = 0.5 * amp * np.cos(w)
        x[..., 5] = 0.4 * amp + 0.1 * np.sin(w)
    # gravity on a slightly tilted z axis
    tilt = rng.normal(0.0, 0.1, size=(n, 2))
    x[..., 0] += tilt[:, :1]
    x[..., 1] += tilt[:, 1:]
    x[..., 2] += 1.0
    return x


def _sample_times(domain: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sample times (n, T) in seconds: a steady 32 Hz clock, or a slow drifting one."""
    steps = np.broadcast_to(np.full(TIME_STEPS, 1.0 / RATE_HZ), (n, TIME_STEPS))
    if domain == "drift":
        base = _u(rng, 1.1, 1.3, n)
        growth = _u(rng, 0.0, 0.35, n)
        ramp = np.linspace(0.0, 1.0, TIME_STEPS)[None, :]
        steps = steps * base * (1.0 + growth * ramp)
    return np.cumsum(steps, axis=1) - steps[:, :1]


def _sensor(domain: str, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What the domain's sensor makes of clean signals ``x`` (n, T, 6)."""
    noise = 0.05
    if domain == "field":
        setup = np.random.default_rng(SEED + 101)  # one fixed sensor for the whole domain
        gain = setup.uniform(0.5, 1.6, size=6)
        offset = setup.normal(0.0, 0.4, size=6)
        x = x * gain + offset
        noise = 0.25
    elif domain == "permuted":
        accel, gyro = [1, 2, 0], [5, 3, 4]
        x = x[..., accel + gyro] * np.array([1, -1, 1, 1, 1, -1])
    elif domain == "drift":
        noise = 0.07
    return x + rng.normal(0.0, noise, size=x.shape)


def _split(labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    train, test = [], []
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n_test = int(round(len(idx) * TEST_FRACTION))
        test.extend(idx[:n_test])
        train.extend(idx[n_test:])
    return rng.permutation(train), rng.permutation(test)


@lru_cache(maxsize=None)
def generate(domain: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Raw (un-normalised) ``x_train, y_train, x_test, y_test`` of one domain, float32/int64."""
    if domain not in DOMAINS:
        raise ValueError(f"synthseq has no domain {domain!r}; known: {', '.join(DOMAINS)}")
    rng = np.random.default_rng(SEED + DOMAINS.index(domain))
    xs, ys = [], []
    for label in range(len(CLASSES)):
        t = _sample_times(domain, PER_CLASS, rng)
        xs.append(_activity(label, t, rng))
        ys.append(np.full(PER_CLASS, label, dtype=np.int64))
    x = _sensor(domain, np.concatenate(xs), rng).astype(np.float32)
    y = np.concatenate(ys)
    train, test = _split(y, rng)
    return x[train], y[train], x[test], y[test]


@lru_cache(maxsize=None)
def reference_stats() -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of the ``lab`` training split (used for every domain)."""
    x = generate(REFERENCE_DOMAIN)[0].reshape(-1, len(CHANNELS)).astype(np.float64)
    return tuple(float(v) for v in x.mean(0)), tuple(float(v) for v in x.std(0))


class SynthSeq(Dataset):
    """Six activity classes of six-channel sensor windows in the domains ``lab``, ``field``,
    ``drift`` and ``permuted``."""

    domains = DOMAINS
    classes = CLASSES

    def __init__(self):
        mean, std = reference_stats()
        self.preprocessing = Preprocessing(SEQUENCE, (TIME_STEPS, len(CHANNELS)), mean, std, scale=1.0)

    def load(self, domain: str) -> DomainData:
        x_train, y_train, x_test, y_test = generate(domain)
        mean = torch.tensor(self.preprocessing.mean, dtype=torch.float32)
        std = torch.tensor(self.preprocessing.std, dtype=torch.float32)

        def split(x, y):
            return Split((torch.from_numpy(x) - mean) / std, torch.from_numpy(y))

        return DomainData(split(x_train, y_train), split(x_test, y_test))

    def augment(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A random view of a batch: per-channel gain (±10%), a small time shift and jitter."""
        batch, _, channels = x.shape
        gain = 1.0 + 0.1 * torch.randn((batch, 1, channels), generator=generator)
        shift = int(torch.randint(-3, 4, (1,), generator=generator))
        jitter = 0.05 * torch.randn(x.shape, generator=generator)
        return torch.roll(x, shifts=shift, dims=1) * gain.to(x.device) + jitter.to(x.device)


@hookimpl
def register_datasets(register):
    register(
        "synthseq",
        SynthSeq,
        domains=DOMAINS,
        modality=SEQUENCE,
        num_classes=len(CLASSES),
        description="synthetic 6-channel activity windows; sensor gain/offset, clock drift, channel permutation",
    )
