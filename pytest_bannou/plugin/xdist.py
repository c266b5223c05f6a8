"""Preset-aware pytest-xdist distribution and the CI matrix.

Under pytest-xdist, ``-n N`` alone (and ``--dist loadgroup``) uses the plugin's own scheduler
(``pytest_xdist_make_scheduler``): each worker writes the preset of every test it collected to a
directory the controller made, and the scheduler groups the tests by preset, so all tests of
one preset go to one worker, which deploys that preset once. Groups are handed out
longest-expected-first (test count x the mean duration per test recorded in the pytest cache
under ``bannou/durations``; the mean of the known presets, else 1 s, when unknown) to whichever
worker is free, which balances the presets across workers. An explicit ``--dist load`` (or any
other mode) is left alone; shared mode (``bannou_share = session``) keeps ``load``.

``--bannou-matrix`` prints ``{"include": [{"preset", "backends", "tests", "backend"}, ...]}`` for a CI
matrix (``matrix()``) and exits without deploying anything.

No module-level pytest import: the hooks are methods of a plugin object the pytest glue
registers (marked with pluggy's marker); the xdist scheduler is imported when it is used.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pluggy

from .._support.files import atomic_write

hookimpl = pluggy.HookimplMarker("pytest")  # pytest's hook marker without importing pytest

GROUP_PREFIX = "bannou:"
CACHE_KEY = "bannou/durations"
GROUPS_KEY = "bannou_groups_dir"  # workerinput: where workers write {nodeid: preset}
UNKNOWN_DURATION = 1.0  # seconds per test when a preset was never measured
NO_PRESET = ""  # the durations key of tests that need no environment


def group_of(nodeid: str) -> str | None:
    """The preset of an xdist-grouped node id (``test_a.py::t@bannou:alpha`` -> ``alpha``)."""
    at = nodeid.rfind("@")
    if at > nodeid.rfind("]") and nodeid[at + 1 :].startswith(GROUP_PREFIX):
        return nodeid[at + 1 + len(GROUP_PREFIX) :]
    return None


def expected_cost(tests: int, per_test: float | None, default: float = UNKNOWN_DURATION) -> float:
    """Test count x recorded seconds per test (``default`` when never recorded)."""
    return tests * (per_test if per_test is not None and per_test > 0 else default)


def order_by_cost(units: Mapping[str, Mapping[str, Any]], durations: Mapping[str, float]) -> list[str]:
    """Scopes of an xdist work queue, most expensive first (ties keep their order): handing
    them out in this order to whichever worker is free balances the load (LPT rule)."""
    known = [d for d in durations.values() if d > 0]
    default = sum(known) / len(known) if known else UNKNOWN_DURATION

    def cost(scope: str) -> float:
        preset = scope[len(GROUP_PREFIX) :] if scope.startswith(GROUP_PREFIX) else NO_PRESET
        return expected_cost(len(units[scope]), durations.get(preset), default)

    return sorted(units, key=lambda s: -cost(s))


def mean_durations(totals: Mapping[str, tuple[float, int]]) -> dict[str, float]:
    """``{preset: (seconds, tests)}`` -> ``{preset: seconds per test}``."""
    return {k: round(s / n, 4) for k, (s, n) in totals.items() if n > 0}


def matrix(
    entries: Iterable[tuple[str, Iterable[str]] | tuple[str, Iterable[str], str | None]],
) -> dict[str, list[dict[str, Any]]]:
    """``{"include": [{"preset": name, "backends": [...], "tests": n, "backend": b}, ...]}``
    from one ``(preset, required backends[, backend])`` entry per selected test, presets sorted
    by name: ``backends`` are its ``requiredBackends`` (empty: any), ``backend`` the one this
    session's ``--bannou-backend`` runs it on (null: its tests are skipped here)."""
    counts: dict[str, int] = {}
    backends: dict[str, list[str]] = {}
    chosen: dict[str, str | None] = {}
    for preset, required, *backend in entries:
        counts[preset] = counts.get(preset, 0) + 1
        backends.setdefault(preset, list(required))
        if backend:
            chosen.setdefault(preset, backend[0])
    return {
        "include": [
            {"preset": p, "backends": backends[p], "tests": counts[p]}
            | ({"backend": chosen[p]} if p in chosen else {})
            for p in sorted(counts)
        ]
    }


def _explicit_dist(config: Any) -> bool:
    """Whether the user chose ``--dist`` (command line, PYTEST_ADDOPTS or ini addopts)."""
    words = list(config.invocation_params.args)
    words += shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))
    with contextlib.suppress(ValueError, KeyError):
        words += list(config.getini("addopts"))
    return any(w == "--dist" or w.startswith("--dist=") or w == "-d" for w in words)


class DistributionPlugin:
    """Hooks for preset-aware xdist distribution (registered as ``bannou-distribution``).

    Workers write ``{nodeid: preset}`` of what they collected to a directory the controller
    created (``GROUPS_KEY`` in workerinput) before they report their collection; the controller's
    scheduler reads it and keeps each preset's tests together. (pytest-xdist's own
    ``xdist_group`` node-id suffix does not survive pytest 9, so marks would not be enough; the
    scheduler still honours such a suffix where it works.)
    """

    def __init__(self, config: Any, session: Any) -> None:
        self.config = config
        self.session = session  # the BannouSession: item_env(item), manager, settings
        self.is_worker = hasattr(config, "workerinput")
        self._totals: dict[str, tuple[float, int]] = {}
        self._groups: dict[str, str] = {}  # nodeid -> preset (this process collected them)
        self._items: list[Any] | None = None  # mapped to _groups on the first report, not at collection
        self.groups_dir: Path | None = None
        option = config.option
        if (
            not self.is_worker
            and getattr(option, "dist", "no") == "load"
            and session.settings.share == "none"
            and not _explicit_dist(config)
        ):
            option.dist = "loadgroup"  # -n N alone: one worker per preset
        if not self.is_worker and getattr(option, "dist", "no") == "loadgroup":
            self.groups_dir = Path(tempfile.mkdtemp(prefix="bannou-xdist-groups-"))
        if self.is_worker and config.workerinput.get(GROUPS_KEY):
            self.groups_dir = Path(config.workerinput[GROUPS_KEY])
            option.loadgroup = True  # workers parse the command line again: tell them here

    @hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """Controller: where each worker writes the preset of every test it collected."""
        if self.groups_dir is not None:
            node.workerinput[GROUPS_KEY] = str(self.groups_dir)

    # --- collection (workers, or the only process) ---------------------------------------
    @hookimpl(tryfirst=True)
    def pytest_collection_finish(self, session: Any) -> None:
        """Before xdist reports the collection: record each test's preset (final node ids)."""
        self._items = session.items
        if self.is_worker and self.groups_dir is not None:
            self._map_groups()
            path = self.groups_dir / f"{self.config.workerinput.get('workerid', 'gw')}.json"
            atomic_write(path, json.dumps(self._groups))

    # --- controller: the scheduler --------------------------------------------------------
    @hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: Any, log: Any) -> Any:
        if config.getvalue("dist") != "loadgroup" or self.groups_dir is None:
            return None
        return make_scheduler(config, log, self.durations(), self.groups_dir)

    def pytest_unconfigure(self) -> None:
        if self.groups_dir is not None and not self.is_worker:
            shutil.rmtree(self.groups_dir, ignore_errors=True)

    # --- durations ------------------------------------------------------------------------
    def durations(self) -> dict[str, float]:
        cache = getattr(self.config, "cache", None)
        if cache is None:
            return {}
        data = cache.get(CACHE_KEY, {})
        return (
            {str(k): float(v) for k, v in data.items() if isinstance(v, int | float)}
            if isinstance(data, dict)
            else {}
        )

    def _map_groups(self) -> None:
        items, self._items = self._items, None
        for item in items or ():
            info = self.session.item_env(item)
            if info.needs_env:
                self._groups[item.nodeid] = info.preset

    def pytest_runtest_logreport(self, report: Any) -> None:
        if self.is_worker:
            return  # the controller sees every worker's reports
        if self._items is not None:
            self._map_groups()
        preset = group_of(report.nodeid) or self._groups.get(report.nodeid)
        if preset is None and self.groups_dir is not None and not self._groups:
            self._groups = read_groups(self.groups_dir)
            preset = self._groups.get(report.nodeid)
        preset = preset or NO_PRESET
        seconds, tests = self._totals.get(preset, (0.0, 0))
        self._totals[preset] = (seconds + float(report.duration), tests + (report.when == "call"))

    def pytest_sessionfinish(self, session: Any) -> None:
        cache = getattr(self.config, "cache", None)
        if self.is_worker or cache is None or not self._totals or self.session.settings.matrix:
            return
        if self.session.settings.plan is not None:
            return
        merged = {**self.durations(), **mean_durations(self._totals)}
        cache.set(CACHE_KEY, merged)


def read_groups(directory: Path) -> dict[str, str]:
    """Every worker's ``{nodeid: preset}`` (they collected the same tests; merged)."""
    out: dict[str, str] = {}
    for path in sorted(directory.glob("*.json")):
        with contextlib.suppress(OSError, ValueError):
            out.update(json.loads(path.read_text()))
    return out


def make_scheduler(config: Any, log: Any, durations: Mapping[str, float], groups_dir: Path) -> Any:
    """xdist's group scheduling with one group per preset, handed out most expensive first."""
    from xdist.scheduler import LoadGroupScheduling

    class PresetScheduling(LoadGroupScheduling):
        _bannou_groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            preset = group_of(nodeid)
            if preset is None:
                if self._bannou_groups is None:
                    self._bannou_groups = read_groups(groups_dir)
                preset = self._bannou_groups.get(nodeid)
            # not a bannou test: the user's own xdist_group suffix, where pytest keeps it
            return GROUP_PREFIX + preset if preset is not None else super()._split_scope(nodeid)

        def _assign_work_unit(self, node: Any) -> None:
            if not getattr(self, "_bannou_ordered", False):
                self._bannou_ordered = True
                order = order_by_cost(self.workqueue, durations)
                units = dict(self.workqueue)
                self.workqueue.clear()
                for scope in order:
                    self.workqueue[scope] = units[scope]
            super()._assign_work_unit(node)

    return PresetScheduling(config, log)
