"""User-facing errors: one line, no traceback, exit code 2."""

import difflib
import re

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


class UserError(Exception):
    """Bad input from the user; the CLI prints the message on one line and exits with 2."""


class PluginError(Exception):
    """A plugin broke the registration contract (duplicate name, wrong type)."""


def closest_first(name, choices):
    """Return ``choices`` sorted by similarity to ``name``, closest first."""
    choices = list(choices)
    return sorted(choices, key=lambda c: (-difflib.SequenceMatcher(None, name, c).ratio(), c))


def unknown(kind, name, choices, where: str = ""):
    """A UserError for an unknown ``kind`` called ``name`` (``where``: e.g. ``" of dataset 'digits'"``),
    listing the known ones closest first."""
    known = ", ".join(closest_first(name, choices)) or "(none registered)"
    return UserError(f"unknown {kind} {name!r}{where}; known: {known}")


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def broken_summary(broken) -> str:
    """One line naming the plugins that failed to load and why (``registry.broken``)."""
    items = [f"{b['plugin']} ({_short(b['error'])})" for b in broken]
    return f"{len(items)} plugin(s) failed to load and are skipped: " + "; ".join(items)


def with_plugin_hints(exc: UserError, broken) -> UserError:
    """``exc`` as is, or, for an unknown name while plugins are broken, with a hint that one of
    them may have provided it (their names and errors, on the same line)."""
    message = str(exc)
    if not broken or not message.startswith("unknown "):
        return exc
    names = ", ".join(f"{b['plugin']} ({_short(b['error'], 80)})" for b in broken)
    return UserError(f"{message}; it may come from a plugin that failed to load: {names}; see `tlbench plugins`")


def strip_ansi(text: str) -> str:
    """``text`` without terminal colour and cursor escape sequences."""
    return _ANSI.sub("", text)


def first_line(value, limit: int | None = 200, *, typed: bool | None = None) -> str:
    """The first non-blank line of ``str(value)`` for a one-line error: stripped, without
    terminal colour codes, at most ``limit`` characters (None: all of it). An exception comes
    as ``Type: line`` (``Type`` alone when its message is blank) unless ``typed=False``; any
    other value as the line alone (``""`` when blank)."""
    lines = [line.strip() for line in strip_ansi(str(value)).splitlines() if line.strip()]
    text = lines[0][:limit] if lines else ""
    if not (isinstance(value, BaseException) if typed is None else typed):
        return text
    name = type(value).__name__
    return f"{name}: {text}" if text else name
