"""Typed settings: frozen dataclasses whose field metadata drives validation, ``--set`` parsing,
the run id, the source-model key and the generated reference (docs/settings.md)."""

from tlbench.settings.fields import FieldSpec, check_value, field_specs, legacy_run_id_view, predating_fields, run_id_view, setting, source_view
from tlbench.settings.search import SearchSettings
from tlbench.settings.train import TrainSettings

__all__ = ["FieldSpec", "SearchSettings", "TrainSettings", "check_value", "field_specs", "legacy_run_id_view", "predating_fields",
           "run_id_view", "setting", "source_view"]
