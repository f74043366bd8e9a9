"""`tlbench verify` re-runs stored cells: a finished cell comes out identical; a result whose
accuracy was edited by hand is reported different (exit status 1), a small edit within tolerance."""

from __future__ import annotations

import json
import shutil

from conftest import TOY_PLUGINS, run_cli
from tlbench.cli.verify import compare, likely_reasons


def _one_cell(toy_grid, tmp_path):
    cell = sorted(p.parent for p in toy_grid.glob("*/result.json"))[0]
    runs = tmp_path / "runs"
    shutil.copytree(cell, runs / cell.name)
    return runs, runs / cell.name / "result.json"


def test_a_finished_cell_verifies_identical_and_an_edited_one_does_not(toy_grid, tmp_path):
    runs, path = _one_cell(toy_grid, tmp_path)
    verify = ["--plugins-dir", TOY_PLUGINS, "verify", runs, "--threads", "1", "--json"]
    done = run_cli(*verify)
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["cells"][0]["verdict"] == "identical", done.stdout + done.stderr
    record = json.loads(path.read_text())
    record["target_acc"] = record["target_acc"] + 0.25 if record["target_acc"] < 0.5 else record["target_acc"] - 0.25
    path.write_text(json.dumps(record))
    done = run_cli(*verify)
    cell = json.loads(done.stdout)["cells"][0]
    assert done.returncode == 1 and cell["verdict"] == "different"
    assert abs(abs(cell["differences"]["target_acc"]) - 0.25) < 1e-9
    text = run_cli("--plugins-dir", TOY_PLUGINS, "verify", runs, "--threads", "1", "--tolerance", "0.3")
    assert text.returncode == 0 and "within tolerance" in text.stdout and "0 different" in text.stdout


def test_the_likely_reason_names_what_differs_in_the_provenance():
    stored = {"status": "ok", "target_acc": 0.9, "versions": {"torch": "2.13.0"}, "device": "cpu",
              "audit": {"data": {"target_test": "aaa"}, "hardware": {"cpu": "AMD EPYC"}, "code": {"commit": "1" * 40}}}
    again = {"status": "ok", "target_acc": 0.8, "versions": {"torch": "2.14.1"}, "device": "cpu",
             "audit": {"data": {"target_test": "bbb"}, "hardware": {"cpu": "Intel Xeon"}, "code": {"commit": "2" * 40}}}
    verdict = compare(stored, again, 0.005)
    assert verdict["verdict"] == "different"
    reasons = "; ".join(verdict["reasons"])
    for fragment in ("torch 2.13.0 -> 2.14.1", "data fingerprint changed: target_test", "AMD EPYC -> Intel Xeon",
                     "code 1111111111 -> 2222222222"):
        assert fragment in reasons
    assert likely_reasons({"device": "cpu"}, {"device": "cpu"}) == [
        "the stored result predates recorded provenance (its code revision, data and CPU model are unknown)"]


def test_bad_input_is_one_line(tmp_path):
    done = run_cli("verify", tmp_path / "nowhere")
    assert done.returncode == 2 and "does not exist" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    (tmp_path / "empty").mkdir()
    assert "no finished cell" in run_cli("verify", tmp_path / "empty").stderr
    assert "--sample 'x' must be a number" in run_cli("verify", tmp_path / "empty", "--sample", "x").stderr
