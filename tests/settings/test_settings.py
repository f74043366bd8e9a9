"""The typed [train] settings: metadata is mandatory, drives validation, the run id, the
source-model key and the generated reference; run ids written before typed settings still match."""

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from tlbench.grid.settings_doc import render
from tlbench.grid.spec import RunSpec
from tlbench.plugin.errors import UserError
from tlbench.settings import TrainSettings, field_specs, run_id_view, setting, source_view

DOCS = Path(__file__).resolve().parents[2] / "docs" / "settings.md"
CELL = ("smallcnn", "digits:mnist", "digits:uci", "finetune", "dann", 10, 0, {},
        {"backbone_lr_scale": 0.1, "reset_head": False}, {"weight": 1.0})
# (run id, source-cache digest) computed by the code before typed settings (commit 4d8c0cd).
GOLDEN = {
    "defaults": ({}, "c81c8530402c", "1b5f406b6265fa26"),
    "fast": ({"steps": 4, "source_epochs": 1.0, "export_dynamo": False, "int8": False}, "2bd94bfa09f5", "f2ae0938eecd63a9"),
    "recipe": ({"optimizer": "sgd", "lr": 0.01, "schedule": "inverse"}, "9a20007b2d53", "5954dca6abaee1ea"),
    "selection": ({"model_selection": "source-val"}, "07aa01e74390", "1b5f406b6265fa26"),
}


@pytest.mark.parametrize("case", GOLDEN)
def test_run_ids_and_source_keys_written_before_typed_settings_still_match(case):
    given, run_id, source_digest = GOLDEN[case]
    spec = RunSpec(*CELL, TrainSettings.from_dict(given))
    assert spec.run_id == run_id
    assert hashlib.sha256(json.dumps(spec.source_key(), sort_keys=True).encode()).hexdigest()[:16] == source_digest


def test_speed_and_measurement_knobs_leave_the_run_id_alone_and_result_settings_change_it():
    base = RunSpec(*CELL, TrainSettings())
    for name, spec in field_specs(TrainSettings).items():
        other = _another_value(spec)
        changed = RunSpec(*CELL, TrainSettings().replace(**{name: other}))
        assert (changed.run_id != base.run_id) == spec.changes_results, name
        in_source = json.dumps(changed.source_key(), sort_keys=True) != json.dumps(base.source_key(), sort_keys=True)
        assert in_source == (spec.source_model and spec.changes_results), name


def _another_value(spec):
    if spec.choices:
        return next(c for c in spec.choices if c != spec.default)
    if spec.type is bool:
        return not spec.default
    if spec.type is str:
        return "openvino" if spec.name == "verify_with" else "entropy"
    step = 1 if spec.type is int else (spec.high - spec.low) / 7 if spec.high is not None else 1.0
    value = spec.default + step
    return value if spec.high is None or value <= spec.high else spec.default - step


def test_a_field_without_metadata_is_refused():
    @dataclass(frozen=True)
    class Broken:
        steps: int = setting(3, "Steps.")
        forgotten: int = 5

    with pytest.raises(TypeError, match="Broken.forgotten has no setting metadata"):
        field_specs(Broken)


def test_every_train_field_declares_doc_and_bounds_or_choices():
    for name, spec in field_specs(TrainSettings).items():
        assert spec.doc.endswith(".") and len(spec.doc) > 10, name
        if spec.type in (int, float):
            assert spec.low is not None and spec.high is not None, f"{name} needs a range"


def test_generated_reference_is_committed_and_names_every_setting():
    text = DOCS.read_text(encoding="utf-8")
    assert text == render(), "docs/settings.md is stale: python -m tlbench.grid.settings_doc > docs/settings.md"
    for name in field_specs(TrainSettings):
        assert f"| `{name}` |" in text


@pytest.mark.parametrize("given, message", [
    ({"steps": -1}, "train option `steps` = -1 is out of range; use 0..10000000"),
    ({"lr": 0.0}, "`lr` = 0.0 is out of range"),
    ({"optimizer": "lion"}, "`optimizer` = 'lion' is not one of adam, adamw, sgd"),
    ({"amp": "yes"}, "`amp` must be true or false"),
    ({"batch_size": 2.5}, "`batch_size` must be int"),
    ({"warmup": float("nan")}, "must be finite"),
    ({"stepz": 3}, "train has no option 'stepz'; known: steps"),
])
def test_bad_values_are_one_line_errors(given, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        TrainSettings.from_dict(given)


def test_settings_are_frozen_typed_and_round_trip_through_a_record():
    train = TrainSettings.from_dict({"steps": 7, "source_epochs": 2})
    assert train.steps == 7 and train.source_epochs == 2.0 and isinstance(train.source_epochs, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        train.steps = 8
    spec = RunSpec(*CELL, train)
    back = RunSpec.from_record(json.loads(json.dumps({"run_id": spec.run_id, **spec.as_dict(), "extra": 1})))
    assert back == spec and back.run_id == spec.run_id and isinstance(back.train, TrainSettings)
    # a record from an older version lacks newer keys: they take their defaults
    assert TrainSettings.from_record({"steps": 7, "retired_key": 1}) == TrainSettings(steps=7)


def test_run_id_view_and_source_view_follow_the_metadata():
    view = run_id_view(TrainSettings(loader_workers=0, pin_memory=False, verify_with="openvino"))
    assert view["loader_workers"] == 2 and view["pin_memory"] is True and "verify_with" not in view
    assert "optimizer" not in view and run_id_view(TrainSettings(optimizer="sgd"))["optimizer"] == "sgd"
    assert set(source_view(TrainSettings())) == {"source_epochs", "batch_size", "lr", "bn_recalibration_batches"}


def test_settings_validate_on_construction_with_the_cli_message():
    """``TrainSettings(steps=-5)`` cannot bypass the checks ``--set train.steps=-5`` applies."""
    expected = "train option `steps` = -5 is out of range; use 0..10000000"
    with pytest.raises(UserError) as direct:
        TrainSettings(steps=-5)
    assert str(direct.value) == expected
    with pytest.raises(UserError) as parsed:
        TrainSettings.from_dict({"steps": -5})
    assert str(parsed.value) == expected
    with pytest.raises(UserError, match="`optimizer` = 'lion' is not one of adam, adamw, sgd"):
        TrainSettings(optimizer="lion")
    with pytest.raises(UserError, match="must be finite"):
        TrainSettings().replace(lr=float("nan"))
    assert TrainSettings(lr=1).lr == 1.0 and isinstance(TrainSettings(lr=1).lr, float)


def test_a_spec_refuses_unknown_train_keys_but_a_stored_record_keeps_resuming():
    with pytest.raises(UserError, match="train has no option 'stepz'; known: steps"):
        RunSpec(*CELL, train={"stepz": 3})
    record = {**RunSpec(*CELL).as_dict(), "train": {**TrainSettings().as_dict(), "a_removed_setting": 1}}
    assert RunSpec.from_record(record).run_id == RunSpec(*CELL).run_id
