"""Is a server reachable? Asked once per host and process, answered within a few seconds, so an
offline machine gets one clear line instead of a library's minute of retries."""

from __future__ import annotations

import socket
from functools import cache
from urllib.parse import urlsplit

PROBE_SECONDS = 3.0


@cache
def unreachable_reason(url: str, timeout: float = PROBE_SECONDS) -> str | None:
    """Why ``url``'s host cannot be reached (name lookup or TCP connect), or None when it answers."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return f"{url!r} names no host"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.gaierror as exc:
        return f"cannot resolve {host} ({exc.strerror or exc})"
    except OSError as exc:
        return f"cannot connect to {host}:{port} ({exc.strerror or type(exc).__name__})"
