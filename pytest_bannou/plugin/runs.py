"""Run directories seen from pytest: a session that is about to deploy marks its run directory
in use and prunes the node logs of older finished runs (``environment.runs``), keeping the
newest few as pytest keeps its last basetemp directories.

Run directories stay under the per-user runs root even with ``--basetemp``: ``bannou-env
status``/``logs``/``clean``, the sweep of dead sessions and ``--bannou-reuse`` find runs there,
and pytest empties a ``--basetemp`` directory at the start of every session that names it, which
would lose the record of a kept environment or of what a killed session left running.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from ..backends.base import BackendOptions
from ..environment.runs import mark_in_use, prune_run_directories, runs_root


class RunsPlugin:
    """Registered as ``bannou-runs``."""

    @pytest.hookimpl(trylast=True)  # after the plugins that adjust the options
    def pytest_bannou_configure_backend(self, config: Any, options: BackendOptions) -> None:
        if options.workdir.parent != runs_root():
            return  # not a run directory of ours (a plugin moved it): nothing to mark or prune
        mark_in_use(options.workdir)
        with contextlib.suppress(OSError):
            prune_run_directories(current=options.run_id)
