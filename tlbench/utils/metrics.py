"""Classification metrics recomputed from saved predictions (no retraining): accuracy, balanced
accuracy, macro-F1, per-class accuracy and worst-class accuracy (WILDS' worst-group view).

Balanced accuracy, macro-F1 and worst-class accuracy average over the classes present in the
labels: an absent class has no recall, so it has no per-class accuracy (None) and no F1.
"""

from __future__ import annotations

import numpy as np

METRICS = {
    "acc": "accuracy",
    "balanced_acc": "balanced accuracy (mean per-class recall)",
    "macro_f1": "macro-F1 over the classes present",
    "worst_class_acc": "worst-class accuracy",
}


def classification_metrics(labels, predictions, num_classes: int | None = None) -> dict:
    """Every metric of :data:`METRICS` plus ``per_class_acc`` (None for an absent class)."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    predictions = np.asarray(predictions, dtype=np.int64).reshape(-1)
    if labels.shape != predictions.shape or labels.size == 0:
        raise ValueError(f"need as many predictions as labels (got {predictions.size} and {labels.size}), at least one")
    classes = int(num_classes or max(labels.max(), predictions.max()) + 1)
    per_class, f1 = [], []
    for c in range(classes):
        actual = labels == c
        if not actual.any():
            per_class.append(None)
            continue
        hits = int(np.sum(actual & (predictions == c)))
        recall = hits / int(actual.sum())
        predicted = int(np.sum(predictions == c))
        precision = hits / predicted if predicted else 0.0
        per_class.append(recall)
        f1.append(0.0 if hits == 0 else 2 * precision * recall / (precision + recall))
    present = [v for v in per_class if v is not None]
    return {
        "acc": float(np.mean(labels == predictions)),
        "balanced_acc": float(np.mean(present)),
        "macro_f1": float(np.mean(f1)),
        "worst_class_acc": float(min(present)),
        "per_class_acc": per_class,
    }
