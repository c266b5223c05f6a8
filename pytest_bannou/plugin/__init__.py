"""pytest glue: options, the ``preset`` marker, batching, fixtures registration, reporting.

Thin by design: settings come from ``options``, presets from ``preset``, the run order from
``scheduling``, deployments from ``environment``. This module only translates between them and
pytest's hooks. Loaded through the ``pytest11`` entry point ``bannou``.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import json
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import pytest

from .._support.masking import mask_text, topology_secrets
from ..environment.environment import Environment
from ..environment.manager import EnvironmentManager
from ..environment.record import EnvRecord, format_status
from ..environment.runs import make_options
from ..errors import BannouError
from ..messaging.session import EnvMessaging
from ..messaging.session import resolve_options as resolve_messaging
from ..topology.model import Topology
from . import hooks as newhooks
from . import options as opts
from .fixtures import bannou_env, bannou_http, bannou_preset  # noqa: F401  (registers the fixtures)

ENV_FIXTURES = frozenset({"bannou_env", "bannou_http"})
MARKER_HELP = (
    "preset(*names, environment=None, replicas=None): run the test in the environment of these "
    "presets (several names parametrize it: test[a], test[b]); environment={VAR: value} and "
    "replicas={node: n} make a derived environment"
)
LOG_TAIL = 30


# --- the marker ---------------------------------------------------------------------------------
def preset_marker_signature(
    *names: str, environment: Mapping[str, Any] | None = None, replicas: Mapping[str, int] | None = None
) -> None:
    """The ``@pytest.mark.preset`` signature its arguments are validated against."""


@dataclass(frozen=True)
class MarkerSpec:
    names: tuple[str, ...]
    environment: tuple[tuple[str, str], ...] = ()
    replicas: tuple[tuple[str, int], ...] = ()


class MarkerError(BannouError):
    pass


_SIGNATURE = inspect.signature(preset_marker_signature)
_SPECS: dict[tuple[Any, ...], MarkerSpec] = {}  # valid markers by arguments (10,000 tests, few markers)


def parse_marker(marker: pytest.Mark, nodeid: str) -> MarkerSpec:
    """Validate a ``preset`` marker's arguments; ``MarkerError`` names the test and the fix."""
    try:
        key = (marker.args, repr(sorted(marker.kwargs.items())) if marker.kwargs else None)
        spec = _SPECS.get(key)
    except TypeError:  # unhashable arguments: validated (and rejected) below
        key, spec = None, None
    if spec is None:
        spec = _parse_marker(marker, nodeid)
        if key is not None:
            _SPECS[key] = spec
    return spec


def _parse_marker(marker: pytest.Mark, nodeid: str) -> MarkerSpec:
    usage = "use @pytest.mark.preset('name', ..., environment={'VAR': 'value'}, replicas={'node': 2})"
    try:
        bound = _SIGNATURE.bind(*marker.args, **marker.kwargs)
    except TypeError as exc:
        raise MarkerError(f"{nodeid}: invalid arguments to @pytest.mark.preset: {exc}; {usage}") from None
    args = bound.arguments
    names = tuple(args.get("names", ()))
    if not names:
        raise MarkerError(f"{nodeid}: @pytest.mark.preset needs at least one preset name; {usage}")
    for n in names:
        if not isinstance(n, str) or not n.strip():
            raise MarkerError(f"{nodeid}: @pytest.mark.preset: preset names are strings, got {n!r}; {usage}")
    if len(set(names)) != len(names):
        raise MarkerError(f"{nodeid}: @pytest.mark.preset names a preset twice: {', '.join(names)}")
    environment = args.get("environment") or {}
    if not isinstance(environment, Mapping):
        raise MarkerError(
            f"{nodeid}: @pytest.mark.preset(environment=...) must be a mapping VAR -> value, "
            f"got {type(environment).__name__}; {usage}"
        )
    env_items = []
    for k, v in environment.items():
        if not isinstance(k, str) or not k or isinstance(v, Mapping | list | tuple | set) or v is None:
            raise MarkerError(
                f"{nodeid}: @pytest.mark.preset(environment=...): {k!r}: {v!r} is not VAR -> string value"
            )
        env_items.append((k, str(v).lower() if isinstance(v, bool) else str(v)))
    replicas = args.get("replicas") or {}
    if not isinstance(replicas, Mapping):
        raise MarkerError(
            f"{nodeid}: @pytest.mark.preset(replicas=...) must be a mapping node -> count, "
            f"got {type(replicas).__name__}; {usage}"
        )
    rep_items = []
    for k, v in replicas.items():
        if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise MarkerError(
                f"{nodeid}: @pytest.mark.preset(replicas=...): {k!r}: {v!r} is not node -> count >= 0"
            )
        rep_items.append((k, v))
    return MarkerSpec(names, tuple(sorted(env_items)), tuple(sorted(rep_items)))


def derived_key(
    name: str, environment: tuple[tuple[str, str], ...] = (), replicas: tuple[tuple[str, int], ...] = ()
) -> str:
    """``split-auth`` or, with overrides, ``split-auth[env:FOO=1;replicas:bannou=2]``."""
    parts = []
    if environment:
        parts.append("env:" + ",".join(f"{k}={v}" for k, v in environment))
    if replicas:
        parts.append("replicas:" + ",".join(f"{k}={v}" for k, v in replicas))
    return f"{name}[{';'.join(parts)}]" if parts else name


@dataclass(frozen=True, slots=True)
class ItemEnv:
    """What one test needs: the preset, the environment key and whether it deploys at all."""

    preset: str
    key: str
    needs_env: bool
    marked: bool
    environment: tuple[tuple[str, str], ...] = ()
    replicas: tuple[tuple[str, int], ...] = ()


ITEM_ENV = pytest.StashKey[ItemEnv]()
ACTIVE_ENV = pytest.StashKey[Environment]()
SESSION = pytest.StashKey["BannouSession"]()


def _uses_env(fixturenames: Any) -> bool:
    return not ENV_FIXTURES.isdisjoint(fixturenames or ())


# --- module-level hooks -------------------------------------------------------------------------
def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(newhooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    opts.register(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """``--bannou-plan`` collects in this process: switch pytest-xdist's distribution off."""
    try:
        settings = opts.resolve(config.getoption, config.getini)
    except BannouError:
        return  # reported by pytest_configure
    if (settings.plan is not None or settings.matrix) and hasattr(config.option, "numprocesses"):
        config.option.numprocesses = 0
        config.option.dist = "no"
        config.option.tx = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    try:
        settings = opts.resolve(config.getoption, config.getini)
    except BannouError as exc:
        raise pytest.UsageError(str(exc)) from None
    session = BannouSession(config, settings)
    config.stash[SESSION] = session
    config.pluginmanager.register(session, "bannou-session")
    from .sharing import ReusePlugin, SharingPlugin
    from .sweep import SweepPlugin
    from .xdist import DistributionPlugin

    config.pluginmanager.register(DistributionPlugin(config, session), "bannou-distribution")
    config.pluginmanager.register(SharingPlugin(config, session), "bannou-sharing")
    config.pluginmanager.register(ReusePlugin(config, session), "bannou-reuse")
    config.pluginmanager.register(SweepPlugin(config, session), "bannou-sweep")
    from . import report as report_plugin
    from . import testers as tester_items

    config.pluginmanager.register(tester_items.TesterReporter(session), "bannou-testers")
    report_plugin.register(config, session)


_GC_FROZEN = False


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Move every object alive at session start (pytest, the plugins, the imported libraries:
    typically 100,000 objects or more) out of the cyclic garbage collector's reach, once per
    process. They live until the process exits anyway, and without this every full collection
    while 10,000 tests are collected, and the interpreter's last one at exit, walks them all
    again. ``--bannou-no-gc-freeze`` turns it off (bench/README.md "scheduling")."""
    global _GC_FROZEN
    bs = session.config.stash.get(SESSION, None)
    if bs is None or not bs.settings.gc_freeze or _GC_FROZEN:
        return
    gc.collect(1)  # young garbage is not frozen with the rest
    gc.freeze()
    _GC_FROZEN = True


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION, None)
    if session is not None:
        session.close()


def session_of(config: pytest.Config) -> BannouSession:
    return config.stash[SESSION]


# --- the session plugin -------------------------------------------------------------------------
class BannouSession:
    """Per-session state and the hooks that need it (registered as plugin ``bannou-session``)."""

    def __init__(self, config: pytest.Config, settings: opts.Settings) -> None:
        self.config = config
        self.settings = settings
        self._library: Any = None
        self._loaded: dict[str, BannouError | None] = {}
        self._parent_markers: dict[pytest.Node, pytest.Mark | None] = {}
        self._item_envs: dict[tuple[Any, ...], ItemEnv] = {}  # shared: 10,000 tests, few distinct
        self.topologies: dict[str, Topology] = {}
        self.plan: Any = None
        self.item_keys: dict[str, str] = {}
        self.kept: Environment | None = None
        self.teardown_error: str | None = None
        worker = (
            getattr(config, "workerinput", {}).get("workerid", "") if hasattr(config, "workerinput") else ""
        )
        options = make_options(
            getattr(config, "workerinput", {}).get("bannou_run_id"),  # xdist: the controller's pick
            ready_timeout=settings.ready_timeout,
            local_command=settings.local_command,
            worker=worker,
            extra=settings.backend_options,
        )
        self.manager = EnvironmentManager(
            settings.backend,
            options,
            transition=settings.transition,
            progress=self._progress,
            on_ready=lambda env: config.hook.pytest_bannou_environment_ready(environment=env),
            before_teardown=lambda env: config.hook.pytest_bannou_before_teardown(environment=env),
            configure_backend=lambda o: config.hook.pytest_bannou_configure_backend(config=config, options=o),
            messaging=EnvMessaging(resolve_messaging(config.getoption, config.getini), options.workdir),
        )
        self._partial = False
        self._current_nodeid: str | None = None
        # tried before the session's own deploy (sharing, --bannou-reuse): (key, topology) -> env
        self.attachers: list[Any] = []

    # --- presets ------------------------------------------------------------------------------
    @property
    def library(self) -> Any:
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
        if topo is None:
            topo = self.library.resolve(
                info.preset,
                environment=dict(info.environment) or None,
                replicas=dict(info.replicas) or None,
            )
            self.topologies[info.key] = topo
        return topo

    # --- collection ---------------------------------------------------------------------------
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
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
            names = list(spec.names)
        elif _uses_env(metafunc.fixturenames) and len(self.settings.presets) > 1:
            names = list(self.settings.presets)
        else:
            return
        if len(names) < 2:
            return
        if "bannou_preset" not in metafunc.fixturenames:
            metafunc.fixturenames.append("bannou_preset")  # the marker parametrizes every test
        metafunc.parametrize("bannou_preset", names, ids=names)

    def item_env(self, item: pytest.Item) -> ItemEnv:
        info = item.stash.get(ITEM_ENV, None)
        if info is not None:
            return info
        marker = self._closest_marker(item)
        callspec = getattr(item, "callspec", None)
        param = callspec.params.get("bannou_preset") if callspec is not None else None
        needs = _uses_env(getattr(item, "fixturenames", ()))
        if marker is not None:
            spec = parse_marker(marker, item.nodeid)
            name = param if param in spec.names else spec.names[0]
            fields: tuple[Any, ...] = (
                name,
                derived_key(name, spec.environment, spec.replicas),
                needs,
                True,
                spec.environment,
                spec.replicas,
            )
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

    def _closest_marker(self, item: pytest.Item) -> pytest.Mark | None:
        """``item.get_closest_marker("preset")`` without walking up the node chain per item: the
        item's own markers (function and parameter marks) come first, then its parent's closest
        marker, looked up once per class or module."""
        for mark in getattr(item, "own_markers", ()):
            if mark.name == "preset":
                return mark
        parent = item.parent
        if parent is None:
            return None
        try:
            return self._parent_markers[parent]
        except KeyError:
            marker = self._parent_markers[parent] = parent.get_closest_marker("preset")
            return marker

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        from ..scheduling.plan import PlanItem, make_plan

        wanted = set(self.settings.presets)
        for name in self.settings.presets:  # a typo must not silently deselect everything
            try:
                self.check_preset(name)
            except BannouError as exc:
                raise pytest.UsageError(f"--bannou-preset {name}: {exc.message}") from None
        infos = [self.item_env(item) for item in items]  # once per item; the loops below reuse it
        if wanted:
            keep = [not (info.marked and info.preset not in wanted) for info in infos]
            if not all(keep):
                config.hook.pytest_deselected(items=[it for it, k in zip(items, keep, strict=True) if not k])
                items[:] = [it for it, k in zip(items, keep, strict=True) if k]
                infos = [info for info, k in zip(infos, keep, strict=True) if k]
        from .testers import add_tester_items

        count = len(items)
        add_tester_items(self, session, config, items, infos)
        if self.settings.testers_only or len(items) < count:
            infos = [self.item_env(item) for item in items]
        else:  # tester items were appended
            infos += [self.item_env(item) for item in items[count:]]

        plan_items = []
        ids: list[str] = []
        seen: set[str] = set()
        checked: set[int] = set()
        item_keys = self.item_keys
        for i, (item, info) in enumerate(zip(items, infos, strict=True)):
            nodeid = item.nodeid
            pid = nodeid if nodeid not in seen else f"{nodeid}#{i}"
            seen.add(pid)
            ids.append(pid)
            env = None
            if info.needs_env:
                if id(info) not in checked:  # once per environment, not per test
                    try:
                        self.check_preset(info.preset)
                        self.topology(info)
                    except BannouError as exc:
                        raise pytest.UsageError(f"{nodeid}: {exc.message}") from None
                    self.manager.record(info.key, info.preset)
                    checked.add(id(info))
                env = info.key
                item_keys[nodeid] = env
            plan_items.append(PlanItem(pid, env))
        self.plan = make_plan(plan_items, self.topologies, batch=self.settings.batch)
        by_id = dict(zip(ids, items, strict=True))
        items[:] = [by_id[i] for i in self.plan.order]
        config.hook.pytest_bannou_plan(plan=self.plan)

    # --- running ------------------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        if self.settings.matrix:
            from .xdist import matrix

            if session.testsfailed and not session.config.option.continue_on_collection_errors:
                return None  # pytest reports the collection errors and stops
            pairs = [
                (i.preset, self.library.resolve(i.preset).required_backends)
                for i in map(self.item_env, session.items)
                if i.marked or i.needs_env
            ]
            with self._uncaptured():
                sys.stdout.write(json.dumps(matrix(pairs)) + "\n")
                sys.stdout.flush()
            return True
        if self.settings.plan is not None:
            if session.testsfailed and not session.config.option.continue_on_collection_errors:
                return None  # pytest reports the collection errors and stops
            text = (
                (
                    json.dumps(self.plan.to_json(), indent=2)
                    if self.settings.plan == "json"
                    else self.plan.to_text()
                )
                if self.plan is not None
                else ""
            )
            with self._uncaptured():
                sys.stdout.write(text + "\n")
                sys.stdout.flush()
            return True
        if self.plan is not None and self.plan.groups and not session.config.option.collectonly:
            try:
                self.manager.prepare()
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
                env = self.manager.activate(info.key, topo)
        except BannouError as exc:
            error = exc.message
        if error is not None:  # outside the except block: one message, no chained exception
            pytest.fail(error, pytrace=False)
        item.stash[ACTIVE_ENV] = env
        return env

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
        rep = yield
        if rep.failed:
            env = item.stash.get(ACTIVE_ENV, None)
            if env is not None and env.active:
                rep.sections.extend(self._sections(env))
        return rep

    def _sections(self, env: Environment) -> list[tuple[str, str]]:
        sections = []
        for node in env.nodes:
            try:
                text = env.logs(node, tail=LOG_TAIL)
            except Exception as exc:  # report what we can; a failing test must still report
                text = f"(logs unavailable: {exc})"
            sections.append((f"bannou logs {node}", text.rstrip() or "(no output)"))
        try:
            status = format_status(env.status())
        except Exception as exc:
            status = f"(status unavailable: {exc})"
        sections.append(("bannou status", f"environment {env.key} on {env.backend} ({env.run_id})\n{status}"))
        hidden = topology_secrets([env.topology])  # secret environment values never reach a report
        return [(title, mask_text(text, hidden)) for title, text in sections]

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        key = self.item_keys.get(report.nodeid)
        if key is None:
            return
        outcomes = self.manager.record(key, key).outcomes
        if report.when == "call":
            if report.passed:
                outcomes["passed"] += 1
            elif report.failed:
                outcomes["failed"] += 1
            else:
                outcomes["skipped"] += 1
        elif report.when == "setup":
            if report.failed:
                outcomes["error"] += 1
            elif report.skipped:
                outcomes["skipped"] += 1
        elif report.failed:
            outcomes["error"] += 1

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        only_print = self.settings.plan is not None or self.settings.matrix
        if only_print and exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            session.exitstatus = pytest.ExitCode.OK
        try:
            clean_run = session.testsfailed == 0 and not any(r.error for r in self.manager.records.values())
            keep = self.settings.keep or (self.settings.keep_on_failure and not clean_run)
            self.kept = self.manager.teardown(keep=keep, remove_workdir=clean_run)
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
            self.manager.teardown()

    # --- terminal -----------------------------------------------------------------------------
    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        s = self.settings
        presets = ", ".join(s.presets) if s.presets else f"as marked (unmarked: {s.default_preset})"
        extra = " (plan only)" if s.plan else ""
        return [f"bannou: backend {s.backend}, presets {presets}, run id {self.manager.run_id}{extra}"]

    @contextlib.contextmanager
    def _uncaptured(self) -> Iterator[None]:
        capman = self.config.pluginmanager.getplugin("capturemanager")
        if capman is None:
            yield
            return
        with capman.global_and_fixture_disabled():
            yield

    def _progress(self, text: str, done: bool) -> None:
        if self.config.get_verbosity() <= -2:
            return
        tr = self.config.pluginmanager.getplugin("terminalreporter")
        with self._uncaptured():
            if tr is None:
                sys.stderr.write(f" ... {text}\n" if done else f"bannou: {text}")
                sys.stderr.flush()
                return
            if not done:
                tr.ensure_newline()
                tr.write(f"bannou: {text}", flush=True)
                self._partial = True
                return
            tr.write(f" ... {text}" if self._partial else f"bannou: ... {text}", flush=True)
            self._partial = False
            # leave the line open: pytest's next write starts a new line (verbose: the test's
            # line again; otherwise the file's progress line is resumed below ours)
            if self._current_nodeid and self.config.get_verbosity() <= 0:
                tr.currentfspath = None
                tr.write_fspath_result(self._current_nodeid, "")
            else:
                tr.currentfspath = -2

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self._current_nodeid = nodeid

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        self._current_nodeid = None

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        records = [
            r for r in self.manager.records.values() if r.activations or r.error or any(r.outcomes.values())
        ]
        tr = terminalreporter
        if self.settings.plan is not None:
            return
        if records and self.config.get_verbosity() > -2:
            tr.write_sep("=", "bannou environments")
            header = (
                "env",
                "backend",
                "deploy",
                "ready",
                "passed",
                "failed",
                "skipped",
                "errors",
                "transitions",
                "restarts",
            )
            rows = [header]
            for r in records:
                rows.append(
                    (
                        r.key,
                        r.backend,
                        f"{r.deploy_time:.1f} s" if r.deploy_time is not None else "-",
                        f"{r.ready_time:.1f} s" if r.ready_time is not None else "-",
                        str(r.outcomes["passed"]),
                        str(r.outcomes["failed"]),
                        str(r.outcomes["skipped"]),
                        str(r.outcomes["error"]),
                        str(r.transitions),
                        str(r.node_restarts),
                    )
                )
            widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
            for row in rows:
                tr.write_line("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
            for r in records:
                if r.error:
                    first = r.error.splitlines()[0]
                    tr.write_line(f"{r.key}: {first}", red=True)
            if self.manager.options.workdir.is_dir():
                tr.write_line(f"node logs of this run: {self.manager.options.workdir}")
        if self.teardown_error is not None:
            tr.write_line(f"bannou: teardown failed: {self.teardown_error}", red=True)
            tr.write_line(
                f"bannou: remove what is left with: bannou-env clean --run-id {self.manager.run_id}"
            )
        if self.kept is not None:
            env = self.kept
            tr.write_sep("=", "bannou environment kept")
            tr.write_line(f"environment {env.key} on {env.backend} is still running (run id {env.run_id})")
            for node, url in env.urls().items():
                tr.write_line(f"  {node}: {url}")
            tr.write_line(f"remove it with: bannou-env clean --run-id {env.run_id} --backend {env.backend}")
