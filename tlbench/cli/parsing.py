"""Flag values `tlbench run` and `tlbench rank` read alike: comma lists, ``--set`` and where data lives."""

from __future__ import annotations

import re

from tlbench.plugin.errors import UserError


def list_flag(flag: str, value: str | None) -> list[str]:
    """The items of ``--flag A,B`` (``[..]`` class subsets keep their commas); a UserError for an
    empty list or an empty item."""
    from tlbench.grid import split_list

    items = split_list(value or "")
    if not items:
        raise UserError(f"--{flag} is empty; give at least one value")
    if any(not part.strip() for part in re.sub(r"\[[^\]]*\]", "[]", value).split(",")):
        raise UserError(f"--{flag} {value!r} has an empty item; separate names with single commas, e.g. "
                        f"--{flag} {','.join(items)}")
    return items


def data_and_set_config(args) -> dict:
    """The config of ``--data-root``, ``--download`` and ``--set``: ``train.*`` settings under
    ``train``, plugin options under ``set`` (each key only when given)."""
    from tlbench.grid import parse_set

    config = {}
    if args.data_root is not None:
        config["data_root"] = args.data_root
    if args.download:
        config["download"] = True
    sets = parse_set(args.set)
    if "train" in sets:
        config["train"] = sets.pop("train")
    if sets:
        config["set"] = sets
    return config
