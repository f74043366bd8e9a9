"""Reading grid configuration: the TOML file, comma-separated flags, ``--set`` and their merge."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from tlbench.grid.spec import TABLE_KEYS
from tlbench.plugin.errors import UserError

# A grid nests a few levels ([search.space.dann] weight = {low = 0.1, high = 10.0} is five);
# deeper nesting is refused before anything walks it (a 3,000-level table breaks recursion).
MAX_NESTING = 16
NESTING_RULE = f"a grid nests tables and arrays at most {MAX_NESTING} levels deep (e.g. [set.l2sp] alpha = 0.01 is three)"


def nesting_depth(value, stop: int = MAX_NESTING) -> int:
    """How deeply ``value`` nests dicts and lists (a scalar is 0), counted without recursion;
    counting stops just past ``stop``."""
    deepest, stack = 0, [(value, 0)]
    while stack and deepest <= stop:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return deepest


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
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"grid file {str(path)!r} is not valid TOML: {exc}") from None
    except RecursionError:  # arrays or inline tables nested thousands deep
        raise UserError(f"grid file {str(path)!r} nests arrays or inline tables too deeply to read; {NESTING_RULE}") from None
    if nesting_depth(config) > MAX_NESTING:
        raise UserError(f"grid file {str(path)!r} nests tables or arrays more than {MAX_NESTING} levels deep; {NESTING_RULE}")
    return config


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
        except RecursionError:  # tomllib never gives None: None marks a value nested thousands deep
            value = None
        if value is None or len(path) + nesting_depth(value) > MAX_NESTING:
            shown = key.strip() if len(key.strip()) <= 60 else key.strip()[:57] + "..."
            raise UserError(f"--set {shown}=... nests too deeply; {NESTING_RULE}")
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {item!r} sets an option inside {part!r}, which another --set gave a value; "
                                "give each option once")
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
