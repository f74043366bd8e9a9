"""What the ``ray`` executor needs around Ray itself: clean worker imports, a bounded connect,
and failures told by their real cause.

- Imports: Ray puts the driver's working folder (and script folder) *first* on every worker's
  ``sys.path`` when the worker runs its first task. Started from a folder holding a ``tlbench``
  sub-folder (say, the parent of a checkout), workers would import that folder instead of the
  installed package. :func:`pin_installed_packages` runs as Ray's ``worker_process_setup_hook``,
  before that happens, and imports ``tlbench`` and every ``tlbench`` entry-point package while
  the worker's path is still the interpreter's own; later imports of their sub-modules follow the
  already imported packages, whatever Ray puts on the path afterwards.
- Connecting: an address nobody answers on fails at once (TCP check) and a cluster that
  accepts the connection but never completes Ray's handshake fails after
  :data:`CONNECT_TIMEOUT_S` seconds (``TLBENCH_RAY_CONNECT_TIMEOUT`` overrides it), on one line
  with exit code 2, instead of Ray retrying for many minutes.
- Failures: a ``RayTaskError`` is reported by the exception raised in the worker, without the
  terminal colour codes Ray adds to its messages.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import socket
import sys
import tempfile
import threading
import time
from functools import partial

from tlbench.plugin.errors import first_line, strip_ansi  # noqa: F401 (strip_ansi: re-exported)

SETUP_HOOK = "tlbench_plugins.executors.ray_support.pin_installed_packages"
CONNECT_TIMEOUT_S = 30.0
TIMEOUT_ENV = "TLBENCH_RAY_CONNECT_TIMEOUT"
EXIT_USAGE = 2
# Ray's messages: the first line of an exception's text, whole, its type named by the caller
message_line = partial(first_line, limit=None, typed=False)


# -- worker imports ------------------------------------------------------------------------------
def plugin_packages() -> list[str]:
    """Top-level packages of ``tlbench`` and of every installed ``tlbench`` entry point."""
    from importlib.metadata import entry_points

    names = ["tlbench"]
    for entry in entry_points(group="tlbench"):
        top = entry.value.split(":")[0].split(".")[0].strip()
        if top and top not in names:
            names.append(top)
    return names


def pin_installed_packages() -> None:
    """Ray worker setup hook: import the installed ``tlbench`` and plugin packages now, before Ray
    prepends the driver's folders to ``sys.path`` (a plugin package that fails to import is left
    to plugin discovery, which reports it)."""
    for name in plugin_packages():
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - discovery reports broken plugins by name later
            pass


def runtime_env() -> dict:
    """The job's runtime environment: the import-pinning setup hook, nothing uploaded."""
    return {"worker_process_setup_hook": SETUP_HOOK}


# -- connecting ----------------------------------------------------------------------------------
def connect_timeout() -> float:
    """Seconds allowed to join a cluster: ``TLBENCH_RAY_CONNECT_TIMEOUT`` or the default."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return CONNECT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        from tlbench.plugin.errors import UserError

        raise UserError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds between 0 and 3600")
    return value


def _what_to_check(address: str) -> str:
    return (f"check that `ray start --head` is running there, that {address} is its GCS address "
            "(default port 6379) and that no firewall blocks it; or drop --ray-address to use a local Ray instance")


def _host_port(address: str) -> tuple[str, int] | None:
    """The ``(host, port)`` a driver connects to for ``address``, or None when Ray decides
    (``auto`` without a known cluster)."""
    target = address[len("ray://"):] if address.startswith("ray://") else address
    if not address.startswith("ray://"):
        try:
            from ray._private.services import canonicalize_bootstrap_address

            target = canonicalize_bootstrap_address(address) or ""
        except Exception:  # noqa: BLE001 - Ray itself reports a malformed or unknown address
            return None
    host, _, port = target.rpartition(":")
    if not host or not re.fullmatch(r"[0-9]+", port):  # ASCII digits only: "²".isdigit() is True
        return None
    if len(port) > 5 or not 0 < int(port) < 65536:
        from tlbench.plugin.errors import UserError

        raise UserError(f"ray address {address!r} names port {port}; a port is 1..65535")
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout: float) -> None:
    """UserError at once when nothing accepts a TCP connection at the cluster's address."""
    from tlbench.plugin.errors import UserError

    target = _host_port(address)
    if target is None:
        return
    host, port = target
    try:
        with socket.create_connection((host, port), timeout=max(0.1, min(timeout, 10.0))):
            return
    except socket.timeout:
        why = f"no answer from {host}:{port} within {min(timeout, 10.0):g}s"
    except OSError as exc:
        why = f"{host}:{port}: {exc.strerror or type(exc).__name__}"
    raise UserError(f"cannot reach a Ray cluster at {address} ({why}); {_what_to_check(address)}")


class Deadline:
    """Ends the process with one line and exit code 2 unless :meth:`done` is called within
    ``seconds`` (Ray's own connect retries run for many minutes and cannot be interrupted)."""

    def __init__(self, seconds: float, message: str, fd: int = 2):
        self.seconds = seconds
        self.message = message
        self.fd = fd
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="tlbench-ray-connect", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done()

    def done(self) -> None:
        self._done.set()

    def _watch(self) -> None:
        if self._done.wait(self.seconds):
            return
        try:
            sys.stdout.flush()
        except Exception:  # noqa: BLE001 - the process ends now whatever stdout does
            pass
        os.write(self.fd, f"error: {self.message}\n".encode())
        os._exit(EXIT_USAGE)


def init_cluster(ray, address: str, **kwargs) -> None:
    """``ray.init(address=...)`` that fails on one line within the connect timeout."""
    from tlbench.plugin.errors import UserError

    timeout = connect_timeout()
    started = time.monotonic()
    check_reachable(address, timeout)
    left = max(1.0, timeout - (time.monotonic() - started))
    message = f"cannot reach a Ray cluster at {address}: no answer within {timeout:g}s; {_what_to_check(address)}"
    try:
        with _stderr_muted() as stderr_fd, Deadline(left, message, stderr_fd):
            ray.init(address=address, **kwargs)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise UserError(f"cannot reach a Ray cluster at {address}: {message_line(exc)}; {_what_to_check(address)}") from None


@contextlib.contextmanager
def _stderr_muted():
    """Send file descriptor 2 to a scratch file (Ray's C++ connect warnings land there, one per
    retry); yields a descriptor of the real stderr for the one line that matters."""
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            sys.stderr.flush()
            os.dup2(sink.fileno(), 2)
            try:
                yield saved
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)


# -- failures ------------------------------------------------------------------------------------
def describe_failure(exc: BaseException) -> tuple[str, str]:
    """(one line for the cell's ``error``, the full text for its ``error.log``) of a Ray task that
    did not return: the worker's own exception for a ``RayTaskError``, else what Ray says."""
    from ray.exceptions import RayTaskError

    from ray import exceptions as rx

    full = strip_ansi(str(exc))
    if isinstance(exc, rx.OutOfDiskError):
        return f"no space left on device on a Ray node ({message_line(exc)})", full
    if isinstance(exc, (rx.WorkerCrashedError, rx.NodeDiedError, rx.OutOfMemoryError, rx.LocalRayletDiedError)):
        return f"Ray worker died running it, and again on its retry ({type(exc).__name__}: {message_line(exc)})", full
    if isinstance(exc, RayTaskError):
        cause = getattr(exc, "cause", None)
        if isinstance(cause, rx.RaySystemError):  # e.g. the task's arguments failed to unpickle
            return _system_error_cause(cause), full
        if cause is not None and not isinstance(cause, RayTaskError):
            message = message_line(cause) or message_line(exc)
            return f"{type(cause).__name__}: {message}", full
    return f"Ray: {type(exc).__name__}: {message_line(exc)}", full


def _system_error_cause(error) -> str:
    """``Type: message`` of what a ``RaySystemError`` wraps: its exception, or the last line of
    the traceback it carries."""
    inner = getattr(error, "client_exc", None)
    if isinstance(inner, BaseException):
        return f"{type(inner).__name__}: {message_line(inner)}"
    lines = [line.strip() for line in strip_ansi(getattr(error, "traceback_str", None) or "").splitlines()]
    last = next((line for line in reversed(lines) if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b", line)), None)
    return last or f"RaySystemError: {message_line(inner or error)}"
