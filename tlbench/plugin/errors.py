"""User-facing errors: one line, no traceback, exit code 2."""

import difflib


class UserError(Exception):
    """Bad input from the user; the CLI prints the message on one line and exits with 2."""


class PluginError(Exception):
    """A plugin broke the registration contract (duplicate name, wrong type)."""


def closest_first(name, choices):
    """Return ``choices`` sorted by similarity to ``name``, closest first."""
    choices = list(choices)
    return sorted(choices, key=lambda c: (-difflib.SequenceMatcher(None, name, c).ratio(), c))


def unknown(kind, name, choices):
    """A UserError for an unknown ``kind`` called ``name``, listing the known ones closest first."""
    known = ", ".join(closest_first(name, choices)) or "(none registered)"
    return UserError(f"unknown {kind} {name!r}; known: {known}")
