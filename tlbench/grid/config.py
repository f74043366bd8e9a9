"""Reading grid configuration: the TOML file, comma-separated flags, ``--set`` and their merge."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from tlbench.grid.spec import TABLE_KEYS
from tlbench.plugin.errors import UserError

def default_grid_path() -> Path:
    """The built-in default grid shipped with tlbench."""
    return Path(str(resources.files("tlbench.grid") / "default_grid.toml"))


def read_grid_file(path) -> dict:
    """Parse a TOML grid file; unreadable or malformed files are a one-line UserError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"grid file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read grid file {str(path)!r}: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"grid file {str(path)!r} is not valid TOML: {exc}") from None


def split_list(value: str) -> list[str]:
    """Split a comma-separated flag value; empty items are dropped. Commas inside brackets stay
    (``digits:uci[5,7],digits:mnist`` is two items)."""
    items, depth, current = [], 0, ""
    for char in value:
        depth += (char == "[") - (char == "]")
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    return [item.strip() for item in items + [current] if item.strip()]


def parse_set(assignments: list[str]) -> dict:
    """``["l2sp.alpha=0.01", "train.steps=50"]`` -> ``{"l2sp": {"alpha": 0.01}, "train": {...}}``."""
    out: dict = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        path = key.strip().split(".")
        if not sep or len(path) < 2 or not all(path):
            raise UserError(f"--set {item!r} must look like NAME.PARAM=VALUE (e.g. l2sp.alpha=0.01 or train.steps=100)")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def merge_config(file_config: dict, flag_config: dict) -> dict:
    """Flags override the grid file; ``train`` and ``set`` tables merge key by key."""
    merged = {k: v for k, v in file_config.items()}
    for key, value in flag_config.items():
        if value is None:
            continue
        if key in TABLE_KEYS and isinstance(merged.get(key), dict):
            base = {k: (dict(v) if isinstance(v, dict) else v) for k, v in merged[key].items()}
            for name, sub in value.items():
                if isinstance(sub, dict) and isinstance(base.get(name), dict):
                    base[name] = {**base[name], **sub}
                else:
                    base[name] = sub
            merged[key] = base
        else:
            merged[key] = value
    return merged
