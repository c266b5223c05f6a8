"""Signals during a session: SIGTERM/SIGHUP become the ``KeyboardInterrupt`` path that tears down
in order, and teardown itself is shielded from them (an interrupted teardown is what leaks).

A mixin of ``EnvironmentManager``: it keeps ``_old_handlers``, ``_interrupted`` and
``_tearing_down`` on the manager, whose teardown sets the last one.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any


class SignalGuard:
    """Installs, shields and restores the session's signal handlers."""

    _old_handlers: dict[int, Any]
    _interrupted: int | None
    _tearing_down: bool

    def install_signals(self) -> None:
        """SIGTERM -> ``KeyboardInterrupt`` (the caller's interrupt path tears down); SIGINT is
        already a ``KeyboardInterrupt``. Only from the main thread; restored at teardown. A
        signal the session was started with ignored stays ignored: under ``nohup`` a hang-up
        must not end the run."""
        if threading.current_thread() is not threading.main_thread():
            return
        sigs = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
        for sig in sigs:
            with contextlib.suppress(ValueError, OSError):
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self._old_handlers[sig] = signal.signal(sig, self._on_signal)

    def shield_signals(self) -> None:
        """During teardown: SIGINT/SIGTERM/SIGHUP are ignored (the process is already on its way
        out, and an interrupted teardown is what leaks); ``restore_signals`` undoes it."""
        if threading.current_thread() is not threading.main_thread():
            return
        sigs = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
        for sig in sigs:
            with contextlib.suppress(ValueError, OSError):
                previous = signal.signal(sig, signal.SIG_IGN)
                self._old_handlers.setdefault(sig, previous)

    def restore_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, handler in self._old_handlers.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(sig, handler)
        self._old_handlers.clear()

    def _on_signal(self, signum: int, frame: Any) -> None:
        """Only what is safe inside a signal handler: remember the signal and raise
        ``KeyboardInterrupt`` into the interrupted code, once. No lock, no I/O, no handler
        changes: the interrupted code may hold any lock, and teardown runs afterwards, in order,
        on the caller's interrupt path (``teardown`` shields it from further signals)."""
        if self._interrupted is not None or self._tearing_down:
            return  # a second signal, or one while teardown runs: the way out is already taken
        self._interrupted = signum
        raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")
