"""The Python API: tlbench.load_results / tlbench.run_grid return Results whose DataFrame equals
the CSV export; run_grid validates like the CLI and resumes finished cells."""

from __future__ import annotations

import io

import pandas as pd
import pytest

import tlbench
from conftest import TOY_PLUGINS, run_cli


def test_the_dataframe_equals_the_csv_export(toy_grid):
    frame = tlbench.load_results(toy_grid).to_pandas()
    exported = pd.read_csv(io.StringIO(run_cli("leaderboard", toy_grid, "--format", "csv", "--columns", "all").stdout))
    assert list(frame.columns) == list(exported.columns) and len(frame) == len(exported) == 2
    roundtrip = pd.read_csv(io.StringIO(frame.to_csv(index=False)))  # the same text-to-table reading on both sides
    pd.testing.assert_frame_equal(roundtrip, exported, check_dtype=False)
    assert set(frame["strategy"]) == {"finetune", "scratch"}


def test_run_grid_runs_a_dict_resumes_and_refuses_bad_input(tmp_path):
    grid = {"backbone": ["smallcnn"], "source": ["toy:a"], "target": ["toy:b"], "strategy": ["finetune"],
            "loss": ["none"], "shots": [5], "seeds": [0], "threads": 1,
            "train": {"steps": 4, "source_epochs": 1.0, "latency_repeats": 2, "export_dynamo": False, "int8": False}}
    results = tlbench.run_grid(grid, results_dir=tmp_path / "runs", plugins_dirs=[TOY_PLUGINS])
    assert len(results) == 1 and results.runs[0]["status"] == "ok" and "1 ok" in repr(results)
    written = next((tmp_path / "runs").glob("*/result.json")).stat().st_mtime_ns
    again = tlbench.run_grid(grid, results_dir=tmp_path / "runs", plugins_dirs=[TOY_PLUGINS])
    assert again.runs[0]["run_id"] == results.runs[0]["run_id"]
    assert next((tmp_path / "runs").glob("*/result.json")).stat().st_mtime_ns == written  # resumed, not rerun
    assert again.leaderboard()[0]["target_acc"] == results.runs[0]["target_acc"]
    with pytest.raises(tlbench.UserError, match="unknown backbone 'nope'"):
        tlbench.run_grid({**grid, "backbone": ["nope"]}, results_dir=tmp_path / "runs", plugins_dirs=[TOY_PLUGINS])
    with pytest.raises(tlbench.UserError, match="does not exist"):
        tlbench.load_results(tmp_path / "missing")
