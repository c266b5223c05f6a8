"""pytest glue: the module pytest loads through the ``pytest11`` entry point ``bannou``.

Thin by design: it holds the module-level hooks (hookspecs, options, configure, the gc policy)
and the fixtures pytest must find here, and registers the plugin objects of its rooms:
``session`` (state in ``config.stash``, collection, plan, environments), ``terminal``,
``xdist``, ``sharing``, ``sweep``, ``testers`` and ``report``. The marker grammar is in
``markers``, settings in ``options``.
"""

from __future__ import annotations

import pytest

from ..errors import BannouError
from ..messaging.session import settings_from
from . import gc_policy
from . import hooks as newhooks
from . import options as opts
from . import report as report_plugin
from .fixtures import bannou_env, bannou_http, bannou_key, bannou_preset  # noqa: F401  (registers the fixtures)
from .markers import (  # noqa: F401  (public names of the old plugin module)
    ENV_FIXTURES,
    ITEM_ENV,
    MARKER_HELP,
    ItemEnv,
    MarkerError,
    MarkerSpec,
    derived_key,
    parse_marker,
    preset_marker_signature,
)
from .runs import RunsPlugin
from .session import ACTIVE_ENV, SESSION, BannouSession, session_of
from .sharing import ReusePlugin, SharingPlugin
from .sweep import SweepPlugin
from .terminal import LOG_TAIL, TerminalPlugin  # noqa: F401
from .testers import TesterReporter
from .xdist import DistributionPlugin

MESSAGING_OPTIONS = (
    "bannou_amqp_url",
    "bannou_redis_url",
    "bannou_heartbeat_interval",
    "bannou_heartbeat_ttl",
    "bannou_degraded_threshold",
)

__all__ = ["ACTIVE_ENV", "SESSION", "BannouSession", "session_of"]


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
        opts.check_ini(config.getini)
        settings = opts.resolve(config.getoption, config.getini)
    except BannouError as exc:
        raise pytest.UsageError(str(exc)) from None
    messaging = settings_from(opts.option_values(MESSAGING_OPTIONS, config.getoption, config.getini))
    session = BannouSession(config, settings, messaging)
    try:
        session.library  # noqa: B018 - a preset directory that does not exist is an error, not ignored
    except BannouError as exc:
        source = settings.sources.get("bannou_presets_dir", "")
        where = {"cli": "--bannou-presets-dir", "env": "BANNOU_PRESETS_DIR", "ini": "ini"}.get(source, source)
        raise pytest.UsageError(f"bannou_presets_dir ({where}): {exc}") from None
    config.stash[SESSION] = session
    pm = config.pluginmanager
    pm.register(session, "bannou-session")
    pm.register(session.progress, "bannou-progress")
    pm.register(TerminalPlugin(session), "bannou-terminal")
    pm.register(DistributionPlugin(config, session), "bannou-distribution")
    pm.register(SharingPlugin(config, session), "bannou-sharing")
    pm.register(ReusePlugin(config, session), "bannou-reuse")
    pm.register(SweepPlugin(config, session), "bannou-sweep")
    pm.register(RunsPlugin(), "bannou-runs")
    pm.register(TesterReporter(session), "bannou-testers")
    report_plugin.register(config, session)


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """The gc policy (``gc_policy``): freeze what is alive at session start, unless
    ``--bannou-no-gc-freeze``."""
    bs = session.config.stash.get(SESSION, None)
    if bs is not None and bs.settings.gc_freeze:
        gc_policy.freeze_once()


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION, None)
    if session is not None:
        session.close()
