"""`tlbench plugins [NAME] [--json]`: every registered plugin, or one plugin in detail.

The list is one table per kind whose names never wrap or truncate: at narrow widths (80 columns)
the provider moves into the wrapped details column instead of taking columns of its own.
"""

from __future__ import annotations

import inspect
import json

from tlbench.plugin.errors import UserError, unknown, with_plugin_hints
from tlbench.plugin.registry import KINDS, SINGULAR
from tlbench.settings.train import RECIPE_KEYS

WIDE = 110  # from this console width on, plugin / distribution / version get their own columns
# Class attributes of strategies, losses and executors worth showing (the contract's switches).
CLASS_FLAGS = {
    "strategies": ("init_from_source", "uses_source_labels", "needs_shared_labels"),
    "adaptation_losses": ("needs_target_unlabeled", "uses_source_labels", "gradient_steps", "bn_statistics",
                          "needs_shared_labels"),
    "executors": ("options",),
    "estimators": ("needs_source_predictions",),
    "validators": ("higher_is_better", "needs", "reads_target_test_labels"),
}
META_SHOWN = ("modality", "domains", "num_classes", "classes", "label_space", "input_size", "in_channels",
              "split_rule", "expected_images", "layout", "get_it", "licence")  # the last five: named benchmarks


def _provider(entry) -> str:
    p = entry.provenance
    if p.distribution:
        return f"{p.plugin} ({p.distribution} {p.version})"
    return f"{p.plugin} ({p.version or 'local file'})"


def _description(entry) -> str:
    text = entry.meta.get("description")
    if not text:
        doc = inspect.getdoc(entry.obj) or ""
        text = doc.split("\n\n")[0].replace("\n", " ")
    return " ".join(str(text).split())


def _summary(entry) -> str:
    meta = entry.meta
    parts = []
    if meta.get("modality"):
        parts.append(str(meta["modality"]))
    if meta.get("domains"):
        parts.append("domains: " + " ".join(map(str, meta["domains"])))
    description = _description(entry)
    if description:
        parts.append(description)
    return "; ".join(parts)



def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return list(value) if isinstance(value, (tuple, set, frozenset)) else repr(value)


def details(entry) -> dict:
    """Everything ``tlbench plugins NAME`` shows about one entry, JSON-ready."""
    obj = entry.obj
    out = {
        "kind": SINGULAR[entry.kind],
        "name": entry.name,
        "plugin": entry.provenance.plugin,
        "distribution": entry.provenance.distribution,
        "version": entry.provenance.version,
        "object": f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', getattr(obj, '__name__', repr(obj)))}",
        "description": _description(entry),
        "doc": inspect.getdoc(obj) or "",
    }
    from tlbench.grid.options import entry_option_specs  # imports torch: only for `plugins NAME`

    recipe = set(RECIPE_KEYS) if entry.kind == "adaptation_losses" else set()
    out["options"] = {}
    for key, spec in entry_option_specs(entry).items():
        option = {"default": _jsonable(spec.default), "type": type(spec.default).__name__}
        if spec.choices is not None:
            option["choices"] = _jsonable(spec.choices)
        if spec.low is not None or spec.high is not None:
            option["range"] = [spec.low, spec.high]
        out["options"][key] = {**option, **({"recipe": True} if key in recipe else {})}
    out["meta"] = {k: _jsonable(entry.meta[k]) for k in META_SHOWN if k in entry.meta}
    if callable(entry.meta.get("check_options")):
        out["meta"]["check_options"] = True
    for flag in CLASS_FLAGS.get(entry.kind, ()):
        if hasattr(obj, flag):  # an executor's `options`: the grid settings it accepts
            out["meta"]["accepts" if flag == "options" else flag] = _jsonable(getattr(obj, flag))
    space = entry.meta.get("search_space", getattr(obj, "search_space", None))
    if space is not None:
        out["search_space"] = _jsonable(space)
    return out


def _find(registry, name: str) -> list:
    found = [registry.entries[kind][name] for kind in KINDS if name in registry.entries[kind]]
    if not found:
        every = {n for kind in KINDS for n in registry.entries[kind]}
        every |= {b["plugin"] for b in registry.broken}
        error = unknown("plugin", name, every)
        broken = [b for b in registry.broken if b["plugin"] == name]
        if broken:
            raise UserError(f"plugin {name!r} failed to load: {broken[0]['error']}")
        raise with_plugin_hints(error, registry.broken)
    return found


def cmd_plugins(args, registry) -> int:
    name = getattr(args, "name", None)
    if name:
        found = [details(e) for e in _find(registry, name)]
        if args.json:
            print(json.dumps(found if len(found) > 1 else found[0], indent=2))
        else:
            _render_details(found)
        return 0
    if args.json:
        print(json.dumps(registry.as_dict(), indent=2))
        return 0
    _render_list(registry)
    return 0


def _render_list(registry) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    wide = console.width >= WIDE
    for kind in KINDS:
        names = registry.names(kind)
        if not names:
            continue
        width = max(len(n) for n in names)
        table = Table(title=f"{kind.replace('_', ' ')} ({len(names)})", title_justify="left", expand=False)
        table.add_column("name", no_wrap=True, min_width=width)
        table.add_column("details", overflow="fold", ratio=1)
        if wide:
            table.add_column("plugin", no_wrap=True)
            table.add_column("distribution", no_wrap=True)
            table.add_column("version", no_wrap=True)
        for n in names:
            entry = registry.entries[kind][n]
            p = entry.provenance
            if wide:
                table.add_row(n, _summary(entry), p.plugin, p.distribution or "(local file)", p.version or "")
            else:
                summary = _summary(entry)
                table.add_row(n, (summary + "; " if summary else "") + "from " + _provider(entry))
        console.print(table)
    if registry.broken:
        broken = Table(title="broken plugins (not loaded)", title_justify="left", style="red")
        broken.add_column("plugin", no_wrap=True)
        broken.add_column("error", overflow="fold", ratio=1)
        for b in registry.broken:
            broken.add_row(b["plugin"], b["error"])
        console.print(broken)
    console.print("`tlbench plugins NAME` shows one plugin's description, options and defaults.")


def _render_details(found: list[dict]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.padding import Padding
    from rich.table import Table

    console = Console()
    for item in found:
        provider = f"{item['distribution']} {item['version']}" if item["distribution"] else (item["version"] or "local file")
        console.print(f"[bold]{escape(item['name'])}[/] ({item['kind']}) from plugin {escape(item['plugin'])} ({escape(provider)})")
        console.print(Padding(f"object: {item['object']}", (0, 0, 0, 2)), markup=False)
        doc = item["doc"]
        if item["description"] and " ".join(doc.split("\n\n")[0].split()) != item["description"]:
            console.print(Padding(item["description"], (0, 0, 0, 2)), markup=False)
        if doc:
            console.print(Padding(escape(doc), (0, 0, 0, 2)))
        for key, value in item["meta"].items():
            shown = ", ".join(map(str, value)) if isinstance(value, list) else value
            console.print(Padding(f"{key}: {shown}", (0, 0, 0, 2)), markup=False)
        if item["options"]:
            console.print(Padding(_options_header(item), (0, 0, 0, 2)), markup=False)
            table = Table(box=None, padding=(0, 2, 0, 4), show_edge=False)
            table.add_column("option", no_wrap=True)
            table.add_column("default", overflow="fold")
            table.add_column("type", no_wrap=True)
            table.add_column("valid", overflow="fold")
            for key, option in item["options"].items():
                kind = option["type"] + (" (training recipe)" if option.get("recipe") else "")
                table.add_row(escape(key), escape(json.dumps(option["default"])), kind, escape(_valid(option)))
            console.print(table)
        else:
            console.print(Padding("options: (none)", (0, 0, 0, 2)))
        if "search_space" in item:
            console.print(Padding(f"search_space: {json.dumps(item['search_space'])}", (0, 0, 0, 2)), markup=False)


def _valid(option: dict) -> str:
    """An option's declared choices or range, in words ('' when it declares neither)."""
    if "choices" in option:
        return ", ".join(map(str, option["choices"]))
    if "range" in option:
        low, high = option["range"]
        return f"{'-inf' if low is None else low}..{'inf' if high is None else high}"
    return ""


def _options_header(item: dict) -> str:
    """Where a plugin's options can be set: validators always run at their defaults, estimators
    take ``--set`` on ``tlbench rank``; every other kind takes ``--set`` and ``[set.NAME]``."""
    name = item["name"]
    if item["kind"] == "validator":
        return "options (validators run at these defaults; they cannot be set yet):"
    if item["kind"] == "estimator":
        return f"options (tlbench rank --set {name}.OPTION=VALUE):"
    return f"options (--set {name}.OPTION=VALUE, or [set.{name}] in a grid file):"
