"""Several source domains in one cell (``a+b``) and domain generalisation (the target withheld)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import FAST_TRAIN, read_results, run_cli
from tlbench.grid.domains import canonical_source, source_parts
from tlbench.plugin.contracts import Split
from tlbench.plugin.errors import UserError

PLUGINS = Path(__file__).resolve().parents[1] / "plugins_domains"
BASE = ["--plugins-dir", PLUGINS, "run", "--backbone", "smallcnn", "--strategy", "finetune", "--seeds", "0",
        "--threads", "1", *FAST_TRAIN]


def test_a_multi_source_string_names_a_set_of_domains():
    assert source_parts("three:b+three:a") == ["three:b", "three:a"]
    assert canonical_source(" three:b + three:a ") == "three:a+three:b"  # one cell, whatever the order
    assert canonical_source("three:a") == "three:a"
    for bad, says in (("three:a+three:a", "twice"), ("three:a+", "empty"), ("pretrained+three:a", "pretrained"),
                      ("three:a+:b", "DATASET:DOMAIN")):
        with pytest.raises(UserError, match=says):
            canonical_source(bad)


def test_joined_sources_keep_every_row_with_its_domain_index():
    from tlbench.execution.sources import join_sources

    a = Split(torch.arange(6, dtype=torch.float32).view(6, 1), torch.tensor([0, 1, 2, 0, 1, 2]))
    b = Split(100 + torch.arange(4, dtype=torch.float32).view(4, 1), torch.tensor([2, 2, 1, 0]))
    joined = join_sources([a, b])
    assert torch.equal(joined.x, torch.cat([a.x, b.x])) and torch.equal(joined.y, torch.cat([a.y, b.y]))
    assert joined.domains.tolist() == [0] * 6 + [1] * 4
    moved = joined.to("cpu")
    assert torch.equal(moved.domains, joined.domains)  # the index travels with the rows
    from tlbench.training.selection import holdout

    train, val = holdout(joined, torch.Generator().manual_seed(0), fraction=0.3)
    for part in (train, val):  # a held-out slice keeps each row's domain
        assert torch.equal(part.domains, (part.x.flatten() >= 100).long())


def test_streamed_sources_join_lazily_and_read_the_same_rows(tmp_path):
    from tlbench.execution.sources import join_sources
    from tlbench.plugin.contracts import IMAGE, Preprocessing
    from tlbench.plugin.sources import PixelArray, normalise_pixels
    from tlbench.training.decode_cache import DecodeCache
    from tlbench.training.presets import training_view
    from tlbench.training.streaming import LazyRows, stream

    pre = Preprocessing(IMAGE, (3, 8, 8), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    g = torch.Generator().manual_seed(0)
    arrays = [torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g).numpy() for n in (7, 5)]
    parts = [Split(stream(LazyRows(PixelArray(a)), pre, (3, 8, 8), "cpu", DecodeCache(tmp_path), "t"),
                   torch.zeros(len(a), dtype=torch.long)) for a in arrays]
    joined = join_sources(parts)
    whole = normalise_pixels(torch.from_numpy(np.concatenate(arrays)), pre)
    rows = torch.tensor([11, 0, 7, 3, 6, 8])
    assert len(joined.x) == 12 and joined.x.shape == (12, 3, 8, 8)
    assert torch.equal(joined.x[rows], whole[rows])
    assert torch.equal(joined.x[2:9], whole[2:9])
    assert torch.equal(joined.x.subset(rows)[1:3], whole[rows[1:3]])
    from tlbench.training.loop import draw

    single = stream(LazyRows(PixelArray(np.concatenate(arrays))), pre, (3, 8, 8), "cpu", DecodeCache(tmp_path), "t")
    view = lambda: training_view("tllib", pre, torch.Generator().manual_seed(4))  # noqa: E731
    assert torch.equal(draw(joined.x, rows, view()), draw(single, rows, view()))  # augmented as one source would be


def test_a_multi_source_cell_trains_one_source_model_on_the_union(tmp_path):
    out = tmp_path / "runs"
    first = run_cli(*BASE, "--source", "three:b+three:a", "--target", "three:c", "--loss", "none,dann", "--shots", "0",
                    "--results-dir", out)
    assert first.returncode == 0, first.stdout + first.stderr
    records = read_results(out)
    assert {r["status"] for r in records} == {"ok"} and len(records) == 2
    assert {r["source"] for r in records} == {"three:a+three:b"}
    assert {r["transfer_kind"] for r in records} == {"domain-adaptation"}
    assert {r["source_domains"]["three:a"] for r in records} == {60} and {r["source_domains"]["three:b"] for r in records} == {75}
    from tlbench.execution.source_cache import CACHE_DIR

    assert len(list((out / CACHE_DIR).glob("*three-a+three-b*.pt"))) == 1  # one source model, shared by both cells
    again = run_cli(*BASE, "--source", "three:a+three:b", "--target", "three:c", "--loss", "none,dann", "--shots", "0",
                    "--results-dir", out)
    assert again.returncode == 0 and "2 already finished, 0 to run" in again.stdout  # the same set, another order


def test_sources_with_different_label_spaces_are_refused_before_training(tmp_path):
    from conftest import TOY_PLUGINS

    got = run_cli("--plugins-dir", TOY_PLUGINS, *BASE, "--source", "three:a+toy:a", "--target", "three:c",
                  "--shots", "0", "--results-dir", tmp_path)
    assert got.returncode != 0
    message = (got.stdout + got.stderr).strip().splitlines()
    assert any("three:a+toy:a" in line and "label space" in line for line in message)
    assert "Traceback" not in got.stdout + got.stderr and not any(tmp_path.iterdir())  # refused before anything ran


DG = ["--set", "train.target_inputs=withheld", "--shots", "0", "--loss", "none"]


def test_domain_generalisation_never_reads_the_target_training_inputs(tmp_path):
    """Target training inputs of NaN: a DG cell gives exactly the clean cell's predictions, while
    a cell that adapts to the unlabeled target breaks on them (the poison is real)."""
    results = {}
    for poison in ("false", "true"):
        out = tmp_path / poison
        got = run_cli(*BASE, "--source", "three:a+three:b", "--target", "three:c", *DG, "--set", f"three.poison={poison}",
                      "--set", "train.int8=true", "--set", "train.model_selection=source-val", "--results-dir", out)
        assert got.returncode == 0, got.stdout + got.stderr
        (record,) = read_results(out)
        assert record["status"] == "ok", record.get("error")
        assert record["transfer_kind"] == "domain-generalisation"
        saved = np.load(next(out.glob("*/predictions.npz")))
        results[poison] = (record, {key: saved[key] for key in saved.files if key.startswith("target")})
    (clean, clean_arrays), (poisoned, poisoned_arrays) = results["false"], results["true"]
    assert clean_arrays.keys() == poisoned_arrays.keys() and "target_topk_prob" in clean_arrays
    for key, values in clean_arrays.items():
        assert np.array_equal(values, poisoned_arrays[key]), key
    assert np.isfinite(poisoned_arrays["target_topk_prob"]).all()
    assert clean["target_acc"] == poisoned["target_acc"] and poisoned["int8_method"] == "static-qdq"
    assert poisoned["int8_error"] is None and poisoned["int8_target_acc"] == clean["int8_target_acc"]  # calibrated on source
    adapted = run_cli(*BASE, "--source", "three:a+three:b", "--target", "three:c", "--shots", "0", "--loss", "dann",
                      "--set", "three.poison=true", "--results-dir", tmp_path / "adapted")
    (record,) = read_results(tmp_path / "adapted")
    assert record["status"] == "failed" or not np.isfinite(record.get("target_acc", float("nan")))


def test_domain_generalisation_refuses_what_needs_the_target_in_one_line(tmp_path):
    for extra, says in ((["--loss", "dann"], "dann"), (["--loss", "none", "--set", "train.model_selection=entropy"], "entropy"),
                        (["--loss", "none", "--strategy", "instance-weighting"], "instance-weighting")):
        got = run_cli(*BASE, "--source", "three:a+three:b", "--target", "three:c", "--shots", "0",
                      "--set", "train.target_inputs=withheld", *extra, "--results-dir", tmp_path)
        text = got.stdout + got.stderr
        assert got.returncode != 0 and says in text and "withheld" in text and "Traceback" not in text, text


def test_the_leaderboard_keeps_a_pair_adapted_and_generalised_apart(tmp_path):
    from tlbench.report.leaderboard import aggregate

    out = tmp_path / "runs"
    for extra in ([], ["--set", "train.target_inputs=withheld"]):
        got = run_cli(*BASE, "--source", "three:a+three:b", "--target", "three:c", "--shots", "0", "--loss", "none",
                      *extra, "--results-dir", out)
        assert got.returncode == 0, got.stdout + got.stderr
    rows = aggregate(read_results(out))
    assert sorted(r["transfer_kind"] for r in rows) == ["domain-adaptation", "domain-generalisation"]
    assert all(r["seeds"] == 1 for r in rows)  # never one row averaging the two
    board = run_cli("leaderboard", "--format", "md", out)
    assert "(domain generalisation)" in board.stdout
