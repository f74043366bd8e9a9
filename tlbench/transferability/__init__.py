"""Transferability before training: candidate features, estimator scores, their cache and how
well they ranked the fine-tuned truth (``tlbench rank``, ``transferability`` in result.json)."""
