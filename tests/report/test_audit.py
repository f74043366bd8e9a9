"""Every result records its provenance (code revision, data fingerprints, constraints, hardware,
determinism); a changed data file changes the fingerprint and the leaderboard warns in one line."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import FAST_TRAIN, read_results, run_cli
from tlbench.execution.audit import split_fingerprint
from tlbench.report.mixed import mixed_provenance

ROOT = Path(__file__).resolve().parents[2]


def test_each_result_records_code_data_constraints_hardware_and_determinism(toy_grid):
    constraints = hashlib.sha256((ROOT / "constraints.txt").read_bytes()).hexdigest()
    for result in read_results(toy_grid):
        audit = result["audit"]
        assert audit["code"]["version"] and len(audit["code"]["commit"]) == 40 and isinstance(audit["code"]["dirty"], bool)
        assert set(audit["data"]) == {"source_train", "source_test", "target_train", "target_test"}
        assert all(len(v) == 16 for v in audit["data"].values())
        assert audit["data"]["target_test"] != audit["data"]["source_test"]
        assert audit["constraints_sha256"] == constraints
        assert audit["hardware"]["cores"] >= 1 and audit["hardware"]["cpu"]
        assert audit["deterministic_algorithms"] in (True, False)
    assert mixed_provenance(read_results(toy_grid)) is None  # one grid, one revision, the same data


def _tree(root: Path) -> Path:
    for d, domain in enumerate(("a", "b")):
        for c in range(2):
            for i in range(4):
                path = root / domain / f"class{c}" / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.full((10, 10, 3), 40 * c + 9 * i + d, dtype=np.uint8)).save(path)
    return root


def test_a_changed_file_changes_the_fingerprint_a_moved_copy_does_not(tmp_path):
    from tlbench_plugins.datasets.imagefolder import ImageFolderDomains

    root = _tree(tmp_path / "data")
    first = split_fingerprint(ImageFolderDomains(data_root=str(root), size=8).load("b").train)
    moved = shutil.copytree(root, tmp_path / "elsewhere")  # copy2 keeps sizes and modification times
    assert split_fingerprint(ImageFolderDomains(data_root=str(moved), size=8).load("b").train) == first
    image = sorted((root / "b").rglob("*.png"))[0]
    Image.fromarray(np.zeros((12, 12, 3), dtype=np.uint8)).save(image)  # another picture, another size
    assert split_fingerprint(ImageFolderDomains(data_root=str(root), size=8).load("b").train) != first


def test_the_leaderboard_warns_when_cells_read_different_data(tmp_path):
    root = _tree(tmp_path / "data")
    cell = ["run", "--backbone", "smallcnn", "--source", "imagefolder:a", "--target", "imagefolder:b", "--data-root", root,
            "--set", "imagefolder.size=8", "--set", "imagefolder.test_fraction=0.5", "--set", "smallcnn.width=4",
            "--shots", "0", "--threads", "1", "--results-dir", tmp_path / "runs", *FAST_TRAIN]
    assert run_cli(*cell, "--seeds", "0").returncode == 0
    for image in sorted((root / "b").rglob("*.png")):
        Image.fromarray(np.full((11, 11, 3), 200, dtype=np.uint8)).save(image)  # the target domain's files change
    assert run_cli(*cell, "--seeds", "1").returncode == 0
    done = run_cli("leaderboard", tmp_path / "runs", "--format", "md")
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert done.returncode == 0 and len(warnings) == 1, done.stderr
    assert "not produced alike" in warnings[0] and "different data for imagefolder:b" in warnings[0]
    records = read_results(tmp_path / "runs")
    assert records[0]["audit"]["data"]["source_train"] == records[1]["audit"]["data"]["source_train"]


def test_other_revisions_and_library_versions_are_named():
    base = {"status": "ok", "source": "s:a", "target": "s:b", "versions": {"torch": "2.14.1"},
            "audit": {"code": {"commit": "a" * 40, "dirty": False}, "data": {"target_test": "x"}}}
    other = json.loads(json.dumps(base))
    other["audit"]["code"] = {"commit": "b" * 40, "dirty": True}
    other["versions"]["torch"] = "2.13.0"
    text = mixed_provenance([base, other])
    assert "2 code revisions (aaaaaaaaaa, bbbbbbbbbb+dirty)" in text and "torch 2.13.0 and 2.14.1" in text
    assert mixed_provenance([base, {**base, "audit": None}]) is None  # unknown provenance is not a difference
