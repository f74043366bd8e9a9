"""Training-input statistics that travel in the ONNX metadata, so `tlbench predict` can say when
an input is unlike anything the model was trained on.

Each input is summarised by its per-channel mean and standard deviation (over the spatial axes
of an image, the time axis of a sequence), after the model's own preprocessing. The training
inputs give the typical value (median) and spread (a robust standard deviation) of each
summary feature; an input's distance is its largest |z-score| over those features. The
threshold is a high quantile of the training inputs' own distances times a margin, so about
one training input in a thousand would come near it. This module imports no torch.
"""

from __future__ import annotations

import numpy as np

STATS_KEY = "tlbench.input_stats"
MAX_EXAMPLES = 2048
CHUNK = 256  # rows read at a time
QUANTILE, MARGIN, MIN_THRESHOLD = 0.999, 1.5, 4.0


def _channel_axis(ndim: int, sequence: bool) -> int:
    return ndim - 1 if sequence else 1


def summary_features(x: np.ndarray, sequence: bool) -> np.ndarray:
    """``(N, 2C)``: each input's per-channel mean, then per-channel standard deviation."""
    x = np.asarray(x, dtype=np.float64)
    axis = _channel_axis(x.ndim, sequence)
    channels_last = np.moveaxis(x, axis, -1).reshape(len(x), -1, x.shape[axis])
    return np.concatenate([channels_last.mean(axis=1), channels_last.std(axis=1)], axis=1)


def _distances(features: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.max(np.abs(features - center) / scale, axis=1)


def input_statistics(x: np.ndarray, sequence: bool, seed: int = 0) -> dict:
    """The statistics of training inputs ``x`` (model-ready: preprocessed and normalised)."""
    rows = np.arange(len(x))
    if len(x) > MAX_EXAMPLES:
        rows = np.sort(np.random.default_rng(seed).permutation(len(x))[:MAX_EXAMPLES])
    # read in chunks: a streamed split (tlbench.training.streaming) never comes into memory whole
    features = np.concatenate([summary_features(np.asarray(x[rows[i:i + CHUNK]]), sequence)
                               for i in range(0, len(rows), CHUNK)])
    center = np.median(features, axis=0)
    mad = np.median(np.abs(features - center), axis=0) * 1.4826  # a standard deviation, robust to outliers
    scale = np.maximum(mad, 1e-3 * np.maximum(1.0, np.abs(center)))
    own = _distances(features, center, scale)
    threshold = max(MIN_THRESHOLD, float(np.quantile(own, QUANTILE)) * MARGIN)
    return {
        "summary": "per-channel mean and std of one input (channel axis %d)" % _channel_axis(x.ndim, sequence),
        "sequence": bool(sequence),
        "center": [round(float(v), 6) for v in center],
        "scale": [round(float(v), 6) for v in scale],
        "threshold": round(threshold, 4),
        "examples": int(len(rows)),
    }


def distance(x: np.ndarray, stats: dict) -> np.ndarray:
    """Each input's distance (largest |z-score| of its summary features) from the training data."""
    features = summary_features(x, stats["sequence"])
    center, scale = np.asarray(stats["center"]), np.asarray(stats["scale"])
    if features.shape[1] != center.size:
        raise ValueError(f"inputs have {features.shape[1] // 2} channels, the statistics {center.size // 2}")
    return _distances(features, center, scale)


def warning_line(name: str, dist: float, stats: dict) -> str | None:
    """One warning line when input ``name`` is far from the training data, else None."""
    if dist <= stats["threshold"]:
        return None
    return (f"warning: {name} is unlike the training inputs (distance {dist:.1f}, threshold {stats['threshold']:.1f}: "
            "per-channel mean/std z-score); its prediction may be unreliable")
