"""Signals during a session: SIGTERM/SIGHUP become the ``KeyboardInterrupt`` path that tears down
in order, and teardown itself is shielded from them (an interrupted teardown is what leaks).

A mixin of ``EnvironmentManager``: it keeps ``_old_handlers``, ``_interrupted`` and
``_tearing_down`` on the manager, whose teardown sets the last one.

A session may have several managers (one per backend), each installing its handler when its
backend is made and restoring when it is torn down, in whatever order the session ends them. So
the handlers before any manager are kept once, for the process (``_BEFORE``), with the managers
installed (``_INSTALLED``): a manager that goes hands SIGTERM/SIGHUP to the latest one still
there, the last one to the handlers from before, never to a manager already gone.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any

#: the managers whose handlers are installed, in the order they installed them
_INSTALLED: list[SignalGuard] = []
#: SIGTERM/SIGHUP as they were before the first of them (a signal ignored then is not in it)
_BEFORE: dict[int, Any] = {}


def _installed(guard: SignalGuard) -> bool:
    return any(g is guard for g in _INSTALLED)


def _session_signals() -> list[int]:
    return [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])


class SignalGuard:
    """Installs, shields and restores the session's signal handlers."""

    _old_handlers: dict[int, Any]  # what ``shield_signals`` found, put back by ``restore_signals``
    _interrupted: int | None
    _tearing_down: bool

    def install_signals(self) -> None:
        """SIGTERM/SIGHUP -> ``KeyboardInterrupt`` (the caller's interrupt path tears down);
        SIGINT is already a ``KeyboardInterrupt``. Only from the main thread; restored at
        teardown. A signal the session was started with ignored stays ignored: under ``nohup``
        a hang-up must not end the run."""
        if threading.current_thread() is not threading.main_thread() or _installed(self):
            return
        if not _INSTALLED:
            _BEFORE.clear()
            for sig in _session_signals():
                current = signal.getsignal(sig)
                if current is not signal.SIG_IGN:
                    _BEFORE[sig] = current
        for sig in _BEFORE:
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, self._on_signal)
        _INSTALLED.append(self)

    def shield_signals(self) -> None:
        """During teardown: SIGINT/SIGTERM/SIGHUP are ignored (the process is already on its way
        out, and an interrupted teardown is what leaks); ``restore_signals`` undoes it."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in [signal.SIGINT, *_session_signals()]:
            with contextlib.suppress(ValueError, OSError):
                previous = signal.signal(sig, signal.SIG_IGN)
                self._old_handlers.setdefault(sig, previous)

    def restore_signals(self) -> None:
        """Undo ``shield_signals``, and hand SIGTERM/SIGHUP to the latest manager still
        installed, or back to the handlers from before them all."""
        if threading.current_thread() is not threading.main_thread():
            return
        shielded, self._old_handlers = self._old_handlers, {}
        for sig, handler in shielded.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(sig, handler)
        if not _installed(self):
            return
        _INSTALLED[:] = [g for g in _INSTALLED if g is not self]
        for sig, before in _BEFORE.items():
            handler = _INSTALLED[-1]._on_signal if _INSTALLED else before
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(sig, handler)
        if not _INSTALLED:
            _BEFORE.clear()

    def _on_signal(self, signum: int, frame: Any) -> None:
        """Only what is safe inside a signal handler: remember the signal and raise
        ``KeyboardInterrupt`` into the interrupted code, once. No lock, no I/O, no handler
        changes: the interrupted code may hold any lock, and teardown runs afterwards, in order,
        on the caller's interrupt path (``teardown`` shields it from further signals)."""
        if self._interrupted is not None or self._tearing_down:
            return  # a second signal, or one while teardown runs: the way out is already taken
        self._interrupted = signum
        raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")
