"""The settings reference (docs/settings.md), generated from the settings metadata.

    python -m tlbench.grid.settings_doc > docs/settings.md

A test checks that the committed file equals this output, so a setting cannot go undocumented.
"""

from __future__ import annotations

import json

from tlbench.settings import SearchSettings, TrainSettings, field_specs

HEADER = """# Settings reference

Generated from the settings metadata in `tlbench/settings/` (`train.py`, `search.py`) by
`python -m tlbench.grid.settings_doc > docs/settings.md`; do not edit by hand.

## `[train]`

Set in a grid file's `[train]` table or with `--set train.KEY=VALUE`. Every value is checked
(type, range, choices) before anything trains.

- **run id**: `yes` — part of the run id (a different value is a different cell);
  `if set` — part of it only when it differs from the default (settings added after the first
  release, so earlier run ids stay valid); `no` — does not change results (speed, measurement
  or a second check), so changing it reuses finished cells.
- **source model**: part of the key of the cached source model shared by the grid.
"""


def _identity(spec) -> str:
    if not spec.changes_results:
        return "no"
    return "yes" if spec.in_v1_ids else "if set"


SEARCH = """
## `[search]`

Set in a grid file's `[search]` table; `--search N` sets `trials`. Its `[search.space.NAME]`
sub-tables replace a plugin's declared search space ([search.md](search.md)). A search's trials
are ordinary grid cells: their run ids carry the sampler, the seed and the trial's sampled values.
"""


def _train_table() -> list[str]:
    rows = ["| setting | default | valid values | run id | source model | what it does |",
            "|---|---|---|---|---|---|"]
    for name, spec in field_specs(TrainSettings).items():
        rows.append(f"| `{name}` | `{json.dumps(spec.default)}` | {spec.describe_valid()} | {_identity(spec)} | "
                    f"{'yes' if spec.source_model else ''} | {spec.doc} |")
    return rows


def _search_table() -> list[str]:
    rows = ["| setting | default | valid values | what it does |", "|---|---|---|---|"]
    for name, spec in field_specs(SearchSettings).items():
        rows.append(f"| `{name}` | `{json.dumps(spec.default)}` | {spec.describe_valid()} | {spec.doc} |")
    return rows


def render() -> str:
    """The whole reference as Markdown."""
    return HEADER + "\n" + "\n".join(_train_table()) + "\n" + SEARCH + "\n" + "\n".join(_search_table()) + "\n"


if __name__ == "__main__":
    print(render(), end="")
