"""One identity for the source model: the source-model cache, the grid's source tasks and the
transferability cache never share an entry between source models trained on different data."""

import json

import pytest

from tlbench.execution import source_cache
from tlbench.grid.identity import source_model_identity
from tlbench.grid.spec import RunSpec
from tlbench.settings import TrainSettings
from tlbench.transferability import cache as transferability_cache

CELL = ("smallcnn", "digits:mnist", "digits:uci", "finetune", "none", 10, 0)
SHAPE = (1, 28, 28)


def _spec(*, cell=CELL, **train):
    return RunSpec(*cell, train=TrainSettings(**train))


def _keys(spec, registry):
    """(source-model cache file, transferability cache file) of ``spec``: the real paths."""
    source = source_cache.cache_path("/r", source_model_identity(spec, registry, SHAPE))
    scores = transferability_cache.cache_path("/r", transferability_cache.cache_key(spec, registry, SHAPE, {"logme": {}}))
    return source, scores


@pytest.mark.parametrize("validator", ["dev", "source-val"])
def test_a_source_model_trained_without_the_held_out_slice_never_shares_a_cache_entry(registry, validator):
    """``dev`` and ``source-val`` read held-out source data, so their source model trains on 90 %
    of the source split: neither cache may hand it the full-data model's entry (or scores)."""
    full, held_out = _keys(_spec(), registry), _keys(_spec(model_selection=validator), registry)
    assert full[0] != held_out[0]
    assert full[1] != held_out[1]


def test_a_validator_that_reads_no_source_data_shares_the_full_data_source_model(registry):
    assert _keys(_spec(), registry) == _keys(_spec(model_selection="entropy"), registry)


def test_anything_that_changes_the_source_model_changes_both_keys(registry):
    base = _keys(_spec(), registry)
    others = [
        _spec(source_epochs=1.0), _spec(batch_size=32), _spec(lr=0.01), _spec(optimizer="sgd"),
        _spec(bn_recalibration_batches=0), _spec(cell=("smallcnn", "digits:uci", "digits:mnist") + CELL[3:]),
        _spec(cell=CELL[:-1] + (1,)), _spec(cell=("resnet18",) + CELL[1:]),
    ]
    for other in others:
        keys = _keys(other, registry)
        assert keys[0] != base[0] and keys[1] != base[1], other
    # a transfer-only setting shares the source model (and its scores)
    assert _keys(_spec(steps=7, model_selection="im"), registry) == base


def test_the_grid_plans_one_source_task_per_identity(registry):
    from tlbench.execution.grid_runner import plan

    specs = [_spec(), _spec(steps=7), _spec(model_selection="dev"), _spec(model_selection="entropy")]
    sources, cells = plan(specs, registry)
    assert len(cells) == 4 and len(sources) == 2
    assert {json.dumps(source_model_identity(t.spec, registry), sort_keys=True) for t in sources} == {
        json.dumps(source_model_identity(s, registry), sort_keys=True) for s in specs}
