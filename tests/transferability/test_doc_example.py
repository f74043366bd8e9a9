"""The estimator example in docs/plugin-reference.md, loaded as a plugin file, registers and scores."""

import re
from pathlib import Path

import numpy as np

from tlbench.plugin.discovery import load_plugins
from tlbench.transferability.scoring import build_estimators, score_all

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugin-reference.md"


def test_the_documented_estimator_works(tmp_path):
    section = DOC.read_text(encoding="utf-8").split("## Estimators", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    (tmp_path / "doc_estimator.py").write_text(code)
    registry = load_plugins([tmp_path])[1]
    assert not registry.broken and "centroid-margin" in registry.names("estimators")
    assert registry.entries["estimators"]["centroid-margin"].provenance.plugin == "doc_estimator"
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 8)
    clustered = np.eye(3)[labels] * 5 + rng.normal(scale=0.3, size=(24, 3))
    estimators = build_estimators(registry, ["centroid-margin"])
    good = score_all(estimators, clustered, labels, None)["scores"]["centroid-margin"]
    bad = score_all(estimators, rng.normal(size=(24, 3)), labels, None)["scores"]["centroid-margin"]
    assert good > bad > 0
