"""Ctrl+C and SIGTERM as a KeyboardInterrupt that cannot be lost.

CPython raises KeyboardInterrupt wherever the main thread happens to be. When that is code
whose exceptions CPython swallows — a weakref callback (the import system's module-lock
clean-up is one), a ``__del__``, a lookup that discards errors — the stop is lost and a
``--loop`` job runs on forever. So the handler here also remembers the signal: whoever takes
the signals over next (a command's own handlers, through :func:`handled_by`) is handed a
signal that never ended the program at once. A KeyboardInterrupt that CPython reports as
"Exception ignored" is kept quiet: it is pending, not a bug.

Only the standard library is imported: ``python -m streamdenoise`` installs this before
anything slow.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

#: Exit status of a program stopped by Ctrl+C or SIGTERM (128 + SIGINT, as shells report it).
EXIT_STATUS = 130

_received: signal.Signals | None = None


def _raise(signum: int, _frame: Any) -> None:
    """SIGTERM behaves like Ctrl+C (the default would kill the process without a word)."""
    global _received
    _received = signal.Signals(signum)
    raise KeyboardInterrupt


def _quiet_when_pending(unraisable: Any) -> None:
    if isinstance(unraisable.exc_value, KeyboardInterrupt) and _received is not None:
        return
    sys.__unraisablehook__(unraisable)


@contextlib.contextmanager
def handled_by(handlers: dict[int, Callable[[int, Any], None]]) -> Iterator[None]:
    """Give the signals to a command's own ``handlers`` (which stop it gracefully) for the
    block, then back; one that came earlier, where CPython swallowed its KeyboardInterrupt,
    goes to its handler on entry."""
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        if _received in handlers:
            handlers[_received](_received, None)
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def stop_requests() -> Iterator[threading.Event]:
    """For a loop that ends cleanly at its next step (training): the first Ctrl+C or SIGTERM
    (or one swallowed before the block) sets the event the block is given, a second raises
    KeyboardInterrupt at once."""
    stop = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    with handled_by({signal.SIGINT: on_signal, signal.SIGTERM: on_signal}):
        yield stop


#: What :func:`install` replaced: the unraisable hook and each signal's handler.
Previous = tuple[Any, dict[int, Any]]


def install() -> Previous | None:
    """Take SIGINT and SIGTERM (main thread only); return what they had, for :func:`restore`."""
    if threading.current_thread() is not threading.main_thread():
        return None
    hook, sys.unraisablehook = sys.unraisablehook, _quiet_when_pending
    return hook, {sig: signal.signal(sig, _raise) for sig in (signal.SIGINT, signal.SIGTERM)}


def restore(previous: Previous | None) -> None:
    """Give the signals and the hook back to what :func:`install` found; forget the signal."""
    global _received
    if previous is None:
        return
    hook, handlers = previous
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    sys.unraisablehook = hook
    _received = None
