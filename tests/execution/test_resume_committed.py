"""Every result committed under results/ is recognised by today's code: a grid resumes it rather
than computing it again — unless it was written before a setting that changes every result
existed (its numbers came from other code), which must then be run again, never resumed.

The expected ids are the ones stored in the committed files, written by earlier releases: they
are not computed by the code under test."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tlbench.execution.results import finished_run_ids, read_result
from tlbench.grid.spec import RunSpec
from tlbench.settings import TrainSettings, predating_fields

from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = sorted((ROOT / "results").rglob("result.json"))


def test_there_are_committed_results_to_check():
    assert len(COMMITTED) > 600 and (ROOT / "results/default-grid/runs").is_dir()


@pytest.mark.parametrize("folder", sorted({p.parent.parent for p in COMMITTED}), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_committed_result_resumes_or_predates_a_results_change(folder):
    done = finished_run_ids(folder)
    for path in sorted(folder.glob("*/result.json")):
        record = json.loads(path.read_text())
        spec = RunSpec.from_record(record)
        predates = predating_fields(TrainSettings, record["train"])
        if predates:
            assert record["run_id"] not in spec.accepted_ids, f"{path}: resumed although written before {predates}"
            continue
        assert read_result(path) is not None, f"{path}: today's schema check rejects it"
        assert record["run_id"] in spec.accepted_ids, f"{path}: today's code would not recognise its id"
        assert record["status"] != "ok" or record["run_id"] in done, f"{path}: not counted as finished"
        assert path.parent.name in spec.stored_dirnames


def test_speed_knobs_stay_out_of_todays_id_but_old_ids_resume():
    base = RunSpec("smallcnn", "digits:mnist", "digits:uci", "finetune", "none", 10, 0)
    slow = RunSpec("smallcnn", "digits:mnist", "digits:uci", "finetune", "none", 10, 0,
                   train=TrainSettings(latency_repeats=10, eval_batch_size=128))
    assert slow.run_id == base.run_id  # a speed knob does not change results
    assert len(slow.accepted_ids) == 2 and slow.accepted_ids[0] == slow.run_id
    assert base.accepted_ids == (base.run_id,) or base.accepted_ids[1] != slow.accepted_ids[1]
    changed = RunSpec("smallcnn", "digits:mnist", "digits:uci", "finetune", "none", 10, 0,
                      train=TrainSettings(steps=151))
    assert not set(changed.accepted_ids) & set(base.accepted_ids) & set(slow.accepted_ids)


def test_a_copy_of_the_committed_default_grid_runs_nothing(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(ROOT / "results/default-grid/runs", runs)
    before = sorted(p.name for p in runs.iterdir())
    result = run_cli("run", "--grid", "--results-dir", runs, "--threads", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "12 runs in grid, 12 already finished, 0 to run" in " ".join(result.stdout.split())
    assert sorted(p.name for p in runs.iterdir()) == before  # nothing stored twice


def test_a_results_only_copy_resumes_but_a_damaged_model_file_does_not(tmp_path):
    from tlbench.execution.results import artifacts_intact

    run = tmp_path / "cell"
    run.mkdir()
    (run / "model.onnx").write_bytes(b"onnx")
    (run / "model.pt").write_bytes(b"weights")
    import hashlib

    record = {"artifacts": {name: hashlib.sha256((run / name).read_bytes()).hexdigest() for name in ("model.onnx", "model.pt")}}
    assert artifacts_intact(run, record)
    (run / "model.pt").write_bytes(b"weightz")
    assert not artifacts_intact(run, record)  # altered
    (run / "model.pt").unlink()
    assert not artifacts_intact(run, record)  # one of two missing: damage
    (run / "model.onnx").unlink()
    assert artifacts_intact(run, record)  # both gone: a results-only copy, the numbers stand
