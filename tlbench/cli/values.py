"""Flag values the command line refuses before anything else looks at them."""

from __future__ import annotations

from tlbench.plugin.errors import UserError

# what a flag takes, for "--FLAG is empty; give ..."
TAKES = {
    "device": "auto, cpu, cuda or cuda:N",
    "data_root": "the directory datasets read from",
    "executor": "an executor name: local, processes or ray",
    "workers": "a whole number of workers",
    "devices": "devices like cuda:0,cuda:1",
    "ray_address": "auto or HOST:PORT",
    "threads": "a whole number of threads",
    "grid": "a grid file (--grid alone runs the built-in default grid)",
    "results_dir": "a results directory",
}


def refuse_empty(args, key: str, flag: str | None = None) -> None:
    """UserError when flag ``key`` was given an empty (or blank) value: ``--device ''`` is a
    mistake, not a request for the default."""
    value = getattr(args, key, None)
    if value is not None and not str(value).strip():
        flag = flag or "--" + key.replace("_", "-")
        raise UserError(f"{flag} is empty; give {TAKES.get(key, 'a value')}")
