"""``python -m pytest_bannou.backends.local.leader PROGRAM ARGS...``: a server under a small leader.

The local backend proves a process its own by the session marker in the process group leader's
environment (``processes.group_is_ours``). Some servers write their process title over that
memory (nginx always; redis-server unless ``--set-proc-title no``), and then clean-up, the stale
sweep and faults could no longer prove them ours and would leave them running. This leader keeps
the marker: it runs the server as its child in its own process group, passes on the signals it
gets (``SIGHUP`` reloads nginx's configuration), and exits with the server's status.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Sequence

FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGHUP,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
)


def main(argv: Sequence[str]) -> int:
    if not argv:
        print("usage: python -m pytest_bannou.backends.local.leader PROGRAM [ARGS...]", file=sys.stderr)
        return 2
    try:
        child = subprocess.Popen(list(argv))  # same process group: signals to the group reach it
    except OSError as exc:
        print(f"leader: cannot start {argv[0]}: {exc}", file=sys.stderr)
        return 127

    def forward(sig: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(sig)

    for sig in FORWARDED:
        signal.signal(sig, forward)
    code = child.wait()
    return 128 - code if code < 0 else code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
