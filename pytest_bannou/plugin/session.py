"""The state of one pytest session, kept in ``config.stash`` (``session_of(config)``).

``BannouSession`` owns the presets loaded so far, each test's environment (``ItemEnv``), the
plan, the ``EnvironmentManager`` of each backend in use and the per-environment records; it is
also the plugin object (``bannou-session``) whose hooks collect, plan, activate environments and
tear them down.

Backends: each environment runs on the backend ``backends.registry.choose`` picks for its
preset's ``requiredBackends`` under ``--bannou-backend`` (``auto``: per preset); a preset that
cannot run on it has its tests skipped with the reason. ``manager`` is the session's own
backend's manager (the common case: the only one); another backend gets its own manager on
first use, sharing the run id, run directory and records. One environment is up at a time:
activating one on another backend first releases the others.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

import pytest

from .._support.masking import mask_text, topology_secrets
from ..backends.base import Availability, BackendOptions
from ..backends.registry import AUTO, availability, canonical, choose
from ..environment.environment import Environment
from ..environment.manager import EnvironmentManager
from ..environment.record import EnvRecord
from ..environment.runs import make_options
from ..errors import BannouError
from ..messaging.session import EnvMessaging, MessagingSettings
from ..topology.model import Topology
from . import options as opts
from .env_scope import ENV_PARAM, KEY_FIXTURE, EnvFixtures
from .markers import ITEM_ENV, ClosestMarker, ItemEnv, MarkerError, derived_key, parse_marker, uses_env
from .terminal import Progress, failure_sections, print_collection_errors, print_uncaptured
from .testers import CASE_ATTR, add_tester_items
from .xdist import matrix

if TYPE_CHECKING:  # imported on first use: a session that deploys nothing does not pay for them
    from ..preset import PresetLibrary
    from ..scheduling.plan import Plan

ACTIVE_ENV = pytest.StashKey[Environment]()
SESSION = pytest.StashKey["BannouSession"]()
ENV_ERROR = pytest.StashKey[str]()  # why a test's marked environment cannot be made


def session_of(config: pytest.Config) -> BannouSession:
    """The session state the plugin keeps in ``config.stash`` (set at ``pytest_configure``)."""
    return config.stash[SESSION]


def count_outcome(outcomes: dict[str, int], report: pytest.TestReport) -> None:
    """One phase report counted in an environment's passed/failed/skipped/error columns; a
    tester case counts once in ``tester_cases`` (its tester item is the test)."""
    if getattr(report, CASE_ATTR, None) is not None:
        if report.when == "teardown":
            outcomes["tester_cases"] = outcomes.get("tester_cases", 0) + 1
        return
    if report.when == "call":
        key = "passed" if report.passed else "failed" if report.failed else "skipped"
    elif report.when == "setup":
        key = "error" if report.failed else "skipped" if report.skipped else ""
    else:
        key = "error" if report.failed else ""
    if key:
        outcomes[key] += 1


class BannouSession:
    """Per-session state and the hooks that need it (registered as plugin ``bannou-session``)."""

    def __init__(
        self, config: pytest.Config, settings: opts.Settings, messaging: MessagingSettings | None = None
    ) -> None:
        self.config = config
        self.settings = settings
        self._library: PresetLibrary | None = None
        self._loaded: dict[str, BannouError | None] = {}
        self._closest_marker = ClosestMarker()
        self._item_envs: dict[tuple[Any, ...], ItemEnv] = {}  # shared: 10,000 tests, few distinct
        self._secrets: tuple[int, set[str]] = (-1, set())
        self._overrides: dict[str, tuple[Any, ...]] = {}  # key -> the overrides it was made from
        self.topologies: dict[str, Topology] = {}
        self.plan: Plan | None = None
        self.collect_errors: list[pytest.CollectReport] = []  # failed collection reports
        self.item_keys: dict[str, str] = {}
        self.kept: Environment | None = None
        self.teardown_error: str | None = None
        self.env_fixtures = EnvFixtures()  # the environment fixtures alive now (env_scope)
        self.current_item: pytest.Item | None = None  # the item being set up or run
        self._key_presets: dict[str, str] = {}
        self.progress = Progress(config, self.mask)
        workerinput = getattr(config, "workerinput", None) or {}
        options = make_options(
            workerinput.get("bannou_run_id"),  # xdist: the controller's pick
            ready_timeout=settings.ready_timeout,
            local_command=settings.local_command,
            worker=workerinput.get("workerid", ""),
            extra=settings.backend_options,
        )
        self._options = options
        self._messaging = messaging or MessagingSettings()
        self.manager = self._new_manager(settings.backend, options)
        self.managers: dict[str, EnvironmentManager] = {}  # other backends in use -> their managers
        self.backends: dict[str, str] = {}  # environment key -> the backend it runs on
        self.skips: dict[str, str] = {}  # environment key -> why its tests are skipped
        self._available: dict[str, Availability] = {}
        self._primary: str | None = None
        # tried before the session's own deploy (sharing, --bannou-reuse): (key, topology) -> env
        self.attachers: list[Callable[[str, Topology], Environment | None]] = []

    # --- backends -----------------------------------------------------------------------------
    def _new_manager(self, request: str, options: BackendOptions) -> EnvironmentManager:
        config = self.config
        return EnvironmentManager(
            request,
            options,
            transition=self.settings.transition,
            progress=self.progress,
            on_ready=lambda env: config.hook.pytest_bannou_environment_ready(environment=env),
            before_teardown=lambda env: config.hook.pytest_bannou_before_teardown(environment=env),
            configure_backend=lambda o: config.hook.pytest_bannou_configure_backend(config=config, options=o),
            messaging=EnvMessaging(self._messaging, options.workdir),
            project=config.rootpath,  # bannou-env clean/status tell this project's runs apart
            on_failed=lambda env, error, seconds: config.hook.pytest_bannou_environment_failed(
                environment=env, error=error, seconds=seconds
            ),
        )

    def _check(self, name: str) -> Availability:
        """A backend's availability, asked once per session (Docker, kubeconfig ... are slow)."""
        if name not in self._available:
            self._available[name] = availability(name)
        return self._available[name]

    @property
    def primary_backend(self) -> str:
        """The backend ``manager`` runs on (``auto``: the first available, as it resolves it)."""
        if self._primary is None:
            name = canonical(self.settings.backend)
            if name == AUTO:
                name = choose(AUTO, (), "", self._check).backend or AUTO
            self._primary = name
        return self._primary

    def choose_backend(self, key: str, topology: Topology) -> str | None:
        """The backend environment ``key`` runs on (once per key), or None: its tests are skipped
        (``skips[key]`` says why)."""
        if key not in self.backends and key not in self.skips:
            choice = choose(self.settings.backend, topology.required_backends, topology.preset, self._check)
            if choice.backend is None:
                self.skips[key] = choice.reason
            else:
                self.backends[key] = self.primary_backend if choice.backend == AUTO else choice.backend
        return self.backends.get(key)

    def manager_for(self, backend: str) -> EnvironmentManager:
        """The manager of ``backend`` (created on first use, with the session's run)."""
        if backend in (AUTO, self.primary_backend):
            return self.manager
        manager = self.managers.get(backend)
        if manager is None:
            options = replace(self._options, extra=dict(self._options.extra))
            manager = self.managers[backend] = self._new_manager(backend, options)
            manager.records = self.manager.records  # one summary table, one report
        return manager

    def manager_of(self, key: str) -> EnvironmentManager:
        """The manager of the backend environment ``key`` runs on."""
        return self.manager_for(self.backends.get(key, AUTO))

    def all_managers(self) -> list[EnvironmentManager]:
        """Every manager of the session, the session's own first."""
        return [self.manager, *self.managers.values()]

    def _progress(self, text: str, done: bool) -> None:
        """The progress line (kept for plugins written against the old name)."""
        self.progress(text, done)

    # --- secrets ------------------------------------------------------------------------------
    def secrets(self) -> set[str]:
        """Secret values of every environment this session resolved (recomputed when one is added)."""
        count, found = self._secrets
        if count != len(self.topologies):
            found = topology_secrets(self.topologies.values())
            self._secrets = (len(self.topologies), found)
        return found

    def mask(self, text: str) -> str:
        return mask_text(text, self.secrets())

    # --- presets ------------------------------------------------------------------------------
    @property
    def library(self) -> PresetLibrary:
        if self._library is None:
            from ..preset import PresetLibrary

            self._library = PresetLibrary(dirs=list(self.settings.presets_dirs), environ=os.environ)
        return self._library

    def check_preset(self, name: str) -> None:
        """Raise the (cached) ``BannouError`` if ``name`` cannot be loaded."""
        if name not in self._loaded:
            try:
                self.library.load(name)
                self._loaded[name] = None
            except BannouError as exc:
                self._loaded[name] = exc
        err = self._loaded[name]
        if err is not None:
            raise err

    def topology(self, info: ItemEnv) -> Topology:
        topo = self.topologies.get(info.key)
        overrides = (info.preset, info.environment, info.replicas)
        if topo is None:
            topo = self.library.resolve(
                info.preset,
                environment=dict(info.environment) or None,
                replicas=dict(info.replicas) or None,
            )
            self.topologies[info.key] = topo
            self._overrides[info.key] = overrides
        elif self._overrides.get(info.key, overrides) != overrides:  # two secrets, one short hash
            raise MarkerError(
                f"environment {info.key}: two different secret values give the same masked key; "
                "change one of them"
            )
        return topo

    # --- collection ---------------------------------------------------------------------------
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Check a test's presets; a test of several environments becomes one test per
        environment (the ``ENV_PARAM`` parameter, ids: the preset names). The environment
        fixtures are one instance per environment either way (``env_scope``)."""
        nodeid = metafunc.definition.nodeid
        marker = self._closest_marker(metafunc.definition)
        if marker is not None:
            error = None
            try:
                spec = parse_marker(marker, nodeid)
                for name in spec.names:
                    self.check_preset(name)
            except BannouError as exc:
                error = exc.message if exc.message.startswith(nodeid) else f"{nodeid}: {exc.message}"
            if error is not None:  # outside the except block: no chained exception in the report
                pytest.fail(error, pytrace=False)
            envs = [(n, derived_key(n, spec.environment, spec.replicas)) for n in spec.names]
        elif uses_env(metafunc.fixturenames) and len(self.settings.presets) > 1:
            envs = [(n, n) for n in self.settings.presets]
        else:
            name = self.settings.presets[0] if self.settings.presets else self.settings.default_preset
            envs = [(name, name)]
        keys = [sys.intern(key) for _, key in envs]
        for name, key in zip((n for n, _ in envs), keys, strict=True):
            self._key_presets.setdefault(key, name)
        if len(envs) > 1:  # one test per environment, ids the preset names
            metafunc.fixturenames.append(ENV_PARAM)
            metafunc.parametrize(ENV_PARAM, keys, ids=[n for n, _ in envs])
        # a single environment is not a parameter (one per test was most of the plugin's
        # collection time): EnvFixtures finishes the old environment's fixtures when it moves

    def preset_of(self, key: str) -> str:
        """The preset of an environment key (a derived key names its preset first)."""
        return self._key_presets.get(key) or key.split("[", 1)[0]

    def item_env(self, item: pytest.Item) -> ItemEnv:
        info = item.stash.get(ITEM_ENV, None)
        if info is not None:
            return info
        marker = self._closest_marker(item)
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        key_param = params.get(ENV_PARAM)
        param = self.preset_of(key_param) if key_param is not None else params.get("bannou_preset")
        needs = uses_env(getattr(item, "fixturenames", ()))
        if marker is not None:
            spec = parse_marker(marker, item.nodeid)
            name = param if param in spec.names else spec.names[0]
            key = derived_key(name, spec.environment, spec.replicas)
            fields: tuple[Any, ...] = (name, key, needs, True, spec.environment, spec.replicas)
        else:
            if param is not None:
                name = param
            elif self.settings.presets:
                name = self.settings.presets[0]
            else:
                name = self.settings.default_preset
            fields = (name, name, needs, param is not None, (), ())
        info = self._item_envs.get(fields)
        if info is None:
            info = self._item_envs[fields] = ItemEnv(*fields)
        item.stash[ITEM_ENV] = info
        return info

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:  # for --bannou-matrix/--bannou-plan, which must fail loudly on stderr
            self.collect_errors.append(report)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        wanted = set(self.settings.presets)
        for name in self.settings.presets:  # a typo must not silently deselect everything
            try:
                self.check_preset(name)
            except BannouError as exc:
                where = opts.where("bannou_preset", self.settings.sources.get("bannou_preset", "cli"), name)
                raise pytest.UsageError(f"{where}: {exc.message}") from None
        infos = [self.item_env(item) for item in items]  # once per item; the loops below reuse it
        if wanted:
            keep = [not (info.marked and info.preset not in wanted) for info in infos]
            if not all(keep):
                config.hook.pytest_deselected(items=[it for it, k in zip(items, keep, strict=True) if not k])
                items[:] = [it for it, k in zip(items, keep, strict=True) if k]
                infos = [info for info, k in zip(infos, keep, strict=True) if k]
        count = len(items)
        add_tester_items(self, session, config, items, infos)
        if self.settings.testers_only or len(items) < count:
            infos = [self.item_env(item) for item in items]
        else:  # tester items were appended
            infos += [self.item_env(item) for item in items[count:]]
        self.plan = self._make_plan(items, infos)
        config.hook.pytest_bannou_plan(plan=self.plan)

    def _make_plan(self, items: list[pytest.Item], infos: list[ItemEnv]) -> Plan:
        """The plan over ``items`` (reordered in place to follow it)."""
        from ..scheduling.plan import PlanItem, make_plan

        plan_items = []
        ids: list[str] = []
        seen: set[str] = set()
        checked: set[int] = set()
        bad: dict[int, str | None] = {}
        item_keys = self.item_keys
        deployed = {info.key for info in infos if info.needs_env}
        for item, info in zip(items, infos, strict=True):
            if info.needs_env and id(info) not in checked:  # once per environment, not per test
                checked.add(id(info))
                bad[id(info)] = self._check_environment(item.nodeid, info)
                if bad[id(info)] is None:
                    self.manager.record(info.key, info.preset).backend = (
                        self.choose_backend(info.key, self.topology(info)) or "-"
                    )
        for i, (item, info) in enumerate(zip(items, infos, strict=True)):
            nodeid = item.nodeid
            pid = nodeid if nodeid not in seen else f"{nodeid}#{i}"
            seen.add(pid)
            ids.append(pid)
            env = None
            if info.needs_env:
                if bad[id(info)] is None:
                    env = info.key
                    item_keys[nodeid] = env
                else:  # its tests fail at setup, naming the marker; the others run
                    item.stash[ENV_ERROR] = bad[id(info)]
            elif info.key in deployed and self.is_member(item, info):
                env = item_keys[nodeid] = info.key  # a test of that environment: run with it
            if env in self.skips:  # requiredBackends: not on this session's backend
                item.add_marker(pytest.mark.skip(reason=self.mask(self.skips[env])))
            plan_items.append(PlanItem(pid, env))
        plan = make_plan(
            plan_items, self.topologies, batch=self.settings.batch, backends=self.backends, skipped=self.skips
        )
        by_id = dict(zip(ids, items, strict=True))
        items[:] = [by_id[i] for i in plan.order]
        return plan

    @staticmethod
    def is_member(item: pytest.Item, info: ItemEnv) -> bool:
        """Whether ``item`` is one of "the tests of" its preset (plan, matrix and summary count
        the same ones): it carries the preset marker or uses a bannou fixture."""
        return info.marked or info.needs_env or KEY_FIXTURE in getattr(item, "fixturenames", ())

    def _check_environment(self, nodeid: str, info: ItemEnv) -> str | None:
        """The environment of ``info`` resolved (and recorded); the message why it cannot be when
        the fault is in a marker's overrides, which fails only that marker's tests. A preset
        that cannot load at all stops the session (``UsageError``)."""
        error = None
        try:
            self.check_preset(info.preset)
            self.topology(info)
        except BannouError as exc:
            error = exc.message
        if error is None:
            self.manager.record(info.key, info.preset)
            return None
        if not (info.environment or info.replicas):
            raise pytest.UsageError(f"{nodeid}: {error}")
        return self.mask(
            f"{nodeid}: @pytest.mark.preset({info.preset!r}, ...) overrides give environment "
            f"{info.key}, which cannot be made: {error}"
        )

    def _matrix_backend(self, info: ItemEnv) -> str | None:
        """The backend the matrix names for ``info``'s preset: chosen like a deployed one's, also
        for a preset whose tests only carry its marker (None: skipped here, or it cannot load)."""
        if info.key in self.backends or info.key in self.skips:
            return self.backends.get(info.key)
        try:
            return self.choose_backend(info.key, self.topology(info))
        except BannouError:
            return None

    # --- running ------------------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        printing = self.settings.matrix or self.settings.plan is not None
        if printing and self.collect_errors:
            option = "--bannou-matrix" if self.settings.matrix else "--bannou-plan"
            print_collection_errors(self.config, option, self.collect_errors, self.mask)
        if printing and session.testsfailed and not session.config.option.continue_on_collection_errors:
            return None  # pytest stops with "Interrupted: N errors during collection" (exit 2)
        if self.settings.matrix:
            pairs = [
                (i.preset, self.library.resolve(i.preset).required_backends, self._matrix_backend(i))
                for item, i in zip(session.items, map(self.item_env, session.items), strict=True)
                if self.is_member(item, i)
            ]
            print_uncaptured(self.config, json.dumps(matrix(pairs)))
            return True
        if self.settings.plan is not None:
            text = ""
            if self.plan is not None:
                text = (
                    json.dumps(self.plan.to_json(), indent=2)
                    if self.settings.plan == "json"
                    else self.plan.to_text()
                )
            print_uncaptured(self.config, text)
            return True
        if self.plan is not None and self.plan.groups and not session.config.option.collectonly:
            try:
                for name in dict.fromkeys(self.backends.get(g.env, AUTO) for g in self.plan.groups):
                    self.manager_for(name).prepare()
            except BannouError as exc:
                raise pytest.UsageError(exc.message) from None
        return None

    def environment_for(self, item: pytest.Item) -> Environment:
        info = self.item_env(item)
        error = None
        try:
            self.check_preset(info.preset)
            topo = self.topology(info)
            attached = (attach(info.key, topo) for attach in self.attachers)
            env = next((e for e in attached if e is not None), None)
            if env is None:
                manager = self.manager_of(info.key)
                for other in self.all_managers():  # one environment up at a time
                    if other is not manager:
                        other.release()
                env = manager.activate(info.key, topo)
        except BannouError as exc:
            error = exc.message
        if error is not None:  # outside the except block: one message, no chained exception
            pytest.fail(self.mask(error), pytrace=False)
        item.stash[ACTIVE_ENV] = env
        return env

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """Before the test's fixtures (after skip marks; pytest's own setup, which runs them, is
        called after this plugin's): finish the fixtures of the environment the test moves away
        from, then activate its own (``env_scope``), restored to its preset if an earlier test
        changed it (``EnvironmentManager.activate``; an unchanged one costs nothing)."""
        error = item.stash.get(ENV_ERROR, None)
        if error is not None:  # a marker whose environment cannot be made: its tests error, alone
            pytest.fail(error, pytrace=False)
        self.current_item = item
        info = self.item_env(item)
        uses_key = KEY_FIXTURE in getattr(item, "fixturenames", ())
        if info.needs_env or uses_key:
            self.env_fixtures.close_unless(info.key)
        if info.needs_env and uses_key:
            self.environment_for(item)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
        rep = yield
        if rep.failed:
            env = item.stash.get(ACTIVE_ENV, None)
            if env is not None and env.active:
                rep.sections.extend(failure_sections(env, self.secrets() | topology_secrets([env.topology])))
        return rep

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        key = self.item_keys.get(report.nodeid)
        if key is not None:
            count_outcome(self.manager.record(key, key).outcomes, report)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        only_print = self.settings.plan is not None or self.settings.matrix
        if only_print and exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            session.exitstatus = pytest.ExitCode.OK
        try:  # fixtures built on an environment end before it (an interrupted run: still alive)
            self.env_fixtures.close()
        except Exception as exc:  # a fixture's teardown failed: the environment still goes
            self.teardown_error = f"teardown of the environment fixtures failed: {exc!r}"
        clean_run = session.testsfailed == 0 and not any(r.error for r in self.manager.records.values())
        keep = self.settings.keep or (self.settings.keep_on_failure and not clean_run)
        # the last made first: each manager puts back the signal handlers it found; the run
        # directory they share goes with the session's own manager, last, if nothing is kept
        for manager in reversed(self.all_managers()):
            remove = clean_run and manager is self.manager and self.kept is None
            try:
                self.kept = manager.teardown(keep=keep, remove_workdir=remove) or self.kept
            except BannouError as exc:  # the engine failed to remove something: say what, fail the run
                self.teardown_error = exc.message
                if session.exitstatus == pytest.ExitCode.OK:
                    session.exitstatus = pytest.ExitCode.TESTS_FAILED

        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:  # pytest-xdist worker: the controller prints the summary
            workeroutput["bannou_records"] = [asdict(r) for r in self.manager.records.values()]

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """pytest-xdist controller: merge each worker's per-environment records."""
        for data in (getattr(node, "workeroutput", None) or {}).get("bannou_records", []):
            rec = EnvRecord(**data)
            mine = self.manager.records.get(rec.key)
            if mine is None:
                self.manager.records[rec.key] = rec
            else:
                mine.merge(rec)

    def close(self) -> None:
        if self.kept is None:
            for manager in reversed(self.all_managers()):
                manager.teardown()
