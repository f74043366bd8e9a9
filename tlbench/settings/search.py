"""``[search]``: how ``--search N`` samples each grid group's trials (one typed, frozen object).

Its ``[search.space.NAME]`` sub-tables are search spaces, not settings; they are validated against
the plugins' option specs in tlbench.search.space and travel beside this object.
"""

from __future__ import annotations

from dataclasses import dataclass

from tlbench.settings.fields import Validated, setting

SAMPLERS = ("random", "tpe")  # Optuna's samplers (tlbench/search/sampling.py)
MAX_TRIALS = 10_000


@dataclass(frozen=True)
class SearchSettings(Validated):
    """The ``[search]`` table's scalar keys; validated on construction."""

    SECTION = "search"

    trials: int = setting(8, "Configurations sampled per grid group (backbone, pair, strategy, loss, shots); every "
                          "trial runs at every grid seed. `--search N` sets it.", low=1, high=MAX_TRIALS)
    sampler: str = setting("random", "Optuna sampler: random (every trial known at once) or tpe (each trial after "
                           "the first `startup` depends on the finished ones).", choices=SAMPLERS)
    seed: int = setting(0, "Search seed: the same seed samples the same configurations.", low=0, high=2**31 - 1)
    objective: str = setting("source-val", "The validator TPE optimises (the random sampler ignores it); "
                             "any registered validator.")
    startup: int = setting(4, "TPE: trials sampled at random before it models the results.", low=1, high=MAX_TRIALS)
    defaults_first: bool = setting(True, "Trial 0 runs the plugins' declared defaults (DomainBed's hparams seed 0).")
