"""Ctrl-C during a grid: the first one stops the grid cleanly, a second one ends the process now.

The first SIGINT raises ``KeyboardInterrupt`` as usual, so the cells in flight are marked
interrupted and the resume command is printed. Cleaning up can take a while (workers to stop, a
Ray instance to shut down); a second SIGINT then ends the process at once with exit code 130
(128 + SIGINT, what a shell reports for Ctrl-C) instead of a traceback or a signal death. What it
cuts short is safe to cut: claims are kernel locks that die with the process, and a cell left
without its result is run again by the next ``tlbench run``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading

EXIT_INTERRUPTED = 130


def _exit_now(signum, frame) -> None:
    os.write(2, b"\ninterrupted again: stopping now (exit code 130); rerun the same command to resume\n")
    for child in multiprocessing.active_children():  # worker processes ignore SIGINT themselves
        try:
            child.kill()
        except Exception:  # noqa: BLE001 - the process ends now whatever a child does
            pass
    os._exit(EXIT_INTERRUPTED)


def _first(signum, frame) -> None:
    signal.signal(signal.SIGINT, _exit_now)
    raise KeyboardInterrupt


def exit_process(code: int) -> None:
    """End the ``tlbench`` process with ``code``; after a Ctrl-C, without the interpreter's teardown.

    Python's shutdown puts the default SIGINT handler back before it unloads modules (torch's take
    a while), so a Ctrl-C pressed then would kill the process by signal. Once a grid was
    interrupted and cleaned up there is nothing left to save: flush the output and leave now.
    """
    if code != EXIT_INTERRUPTED:
        raise SystemExit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed pipe must not turn an exit into a traceback
            pass
    for child in multiprocessing.active_children():
        try:
            child.kill()
        except Exception:  # noqa: BLE001
            pass
    os._exit(code)


class GridInterrupts:
    """While active (main thread only): first Ctrl-C raises KeyboardInterrupt, the next exits 130.

    On leaving, the previous handler comes back unless a Ctrl-C was seen: then the process is on
    its way out and a further Ctrl-C still exits with 130 rather than a traceback.
    """

    def __init__(self):
        self.previous = None
        self.active = False

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.getsignal(signal.SIGINT)
            if self.previous is not signal.SIG_IGN:  # a background job keeps ignoring Ctrl-C
                signal.signal(signal.SIGINT, _first)
                self.active = True
        return self

    @property
    def interrupted(self) -> bool:
        return self.active and signal.getsignal(signal.SIGINT) is _exit_now

    def after_interrupt(self) -> None:
        """Called by the grid's KeyboardInterrupt handler: from now on Ctrl-C exits at once."""
        if self.active:
            signal.signal(signal.SIGINT, _exit_now)

    def __exit__(self, *exc) -> None:
        if self.active and not self.interrupted:
            signal.signal(signal.SIGINT, self.previous)
