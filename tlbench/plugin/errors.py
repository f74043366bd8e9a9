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


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 200 characters of it) for a one-line error."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__
