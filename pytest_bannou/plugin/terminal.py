"""What the plugin shows in the terminal: the header, progress lines, the environments table, the
log and status sections of a failed test, and output printed past pytest's capture.

Every text that may carry an environment's values goes through the session's secret mask first.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import pytest

from .._support.masking import mask_text
from ..environment.environment import Environment
from ..environment.manager import EnvironmentManager
from ..environment.record import EnvRecord, format_status
from .options import Settings

LOG_TAIL = 30
TABLE_HEADER = (
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
    "tester cases",
)


class SessionView(Protocol):
    """What the terminal reads of the session (``session.BannouSession``)."""

    settings: Settings
    manager: EnvironmentManager
    kept: Environment | None
    teardown_error: str | None

    def secrets(self) -> set[str]: ...


def verbosity(config: pytest.Config) -> int:
    """pytest's verbosity (``-v`` +1, ``-q`` -1): ``Config.get_verbosity`` since pytest 8,
    ``config.option.verbose`` on the older pytest 7.4 this plugin supports."""
    get = getattr(config, "get_verbosity", None)
    if get is not None:
        return int(get())
    return int(getattr(config.option, "verbose", 0) or 0)


@contextlib.contextmanager
def uncaptured(config: pytest.Config) -> Iterator[None]:
    """pytest's capture off for a moment: progress and printed plans reach the terminal."""
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is None:
        yield
        return
    with capman.global_and_fixture_disabled():
        yield


def print_uncaptured(config: pytest.Config, text: str) -> None:
    with uncaptured(config):
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def print_collection_errors(
    config: pytest.Config, option: str, reports: Iterable[pytest.CollectReport], mask: Callable[[str], str]
) -> None:
    """``--bannou-matrix``/``--bannou-plan`` after collection errors: say so on stderr, so a CI
    step that keeps stdout (the JSON) still shows why it failed. Without pytest's terminal
    (``-p no:terminal``) nothing else reports them: each error is written out in full."""
    reports = list(reports)
    count = f"{len(reports)} error{'s' if len(reports) != 1 else ''}"
    what = "matrix" if option == "--bannou-matrix" else "plan"
    outcome = (
        f"the {what} leaves those files out"
        if config.option.continue_on_collection_errors
        else f"no {what} printed"
    )
    lines = [f"bannou: {option}: {count} during collection, {outcome}"]
    if config.pluginmanager.getplugin("terminalreporter") is None:
        for report in reports:
            lines += [f"ERROR collecting {report.nodeid or report.fspath}", report.longreprtext.rstrip()]
    with uncaptured(config):
        sys.stderr.write(mask("\n".join(lines)) + "\n")
        sys.stderr.flush()


class Progress:
    """``bannou: deploying ... ready in 0.2 s`` lines between pytest's own (the manager's
    ``progress`` callback); registered as a plugin to know which test line is open.

    A finished progress line always ends with a newline, and pytest's own line is written again
    below it as pytest would have (the file name, or with ``-v`` the test's location), so that
    what follows (``.``, ``PASSED``, a test's output under ``-s``) lands where it belongs. With
    ``-q`` pytest writes no file names: the dots just go on below ours."""

    def __init__(self, config: pytest.Config, mask: Callable[[str], str]) -> None:
        self.config = config
        self.mask = mask
        self._partial = False
        self._current_nodeid: str | None = None
        self._verbose_prefix: str | None = None  # the test's line as pytest -v wrote it
        self._quiet_line_open = False  # -q: pytest's dots are on the current line

    def __call__(self, text: str, done: bool) -> None:
        level = verbosity(self.config)
        if level <= -2:
            return
        text = self.mask(text)
        tr = self.config.pluginmanager.getplugin("terminalreporter")
        with uncaptured(self.config):
            if tr is None:
                sys.stderr.write(f" ... {text}\n" if done else f"bannou: {text}")
                sys.stderr.flush()
                return
            if not done:
                self._start_line(tr, level)
                tr.write(f"bannou: {text}", flush=True)
                self._partial = True
                return
            if not self._partial:
                self._start_line(tr, level)
            if text or not self._partial:  # "" ends a line that said all there was to say
                tr.write(f" ... {text}" if self._partial else f"bannou: ... {text}", flush=True)
            self._partial = False
            self._resume(tr, level)

    def _start_line(self, tr: Any, level: int) -> None:
        """Begin our line below whatever pytest left open."""
        if level < 0 and self._quiet_line_open:
            tr.write("\n")
            self._quiet_line_open = False
        else:
            tr.ensure_newline()

    def _resume(self, tr: Any, level: int) -> None:
        """End our line and give pytest its line back."""
        tr.currentfspath = None
        if self._current_nodeid is not None and level == 0:
            tr.write_fspath_result(self._current_nodeid, "")  # a newline, then "test_a.py " again
            return
        tr.write("\n", flush=True)
        if self._current_nodeid is not None and level > 0 and self._verbose_prefix is not None:
            tr.write(self._verbose_prefix, flush=True)  # "test_a.py::test_1 " again
            tr.currentfspath = self._verbose_prefix

    @pytest.hookimpl(trylast=True)  # after pytest's terminal reporter wrote the test's line
    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self._current_nodeid = nodeid
        tr = self.config.pluginmanager.getplugin("terminalreporter")
        prefix = getattr(tr, "currentfspath", None)
        self._verbose_prefix = prefix if isinstance(prefix, str) else None

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        self._current_nodeid = None
        self._verbose_prefix = None
        self._quiet_line_open = True


def failure_sections(env: Environment, secrets: Iterable[str]) -> list[tuple[str, str]]:
    """The node logs and status a failed test's report carries (masked: they reach the terminal
    and pytest's ``--junitxml``)."""
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
    hidden = set(secrets)
    return [(title, mask_text(text, hidden)) for title, text in sections]


def table(records: Iterable[EnvRecord]) -> list[str]:
    """The environments table, one line per environment."""
    rows = [TABLE_HEADER]
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
                str(r.outcomes.get("tester_cases", 0)),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_HEADER))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]


class TerminalPlugin:
    """The header line and the end-of-session summary (registered as ``bannou-terminal``)."""

    def __init__(self, session: SessionView) -> None:
        self.session = session

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        s = self.session.settings
        presets = ", ".join(s.presets) if s.presets else f"as marked (unmarked: {s.default_preset})"
        extra = " (plan only)" if s.plan else ""
        return [
            f"bannou: backend {s.backend}, presets {presets}, run id {self.session.manager.run_id}{extra}"
        ]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        bs, tr = self.session, terminalreporter
        if bs.settings.plan is not None:
            return
        manager = bs.manager
        records = [
            r for r in manager.records.values() if r.activations or r.error or any(r.outcomes.values())
        ]
        if records and verbosity(tr.config) > -2:
            tr.write_sep("=", "bannou environments")
            for line in table(records):
                tr.write_line(line)
            hidden = bs.secrets()
            for r in records:
                if r.error:
                    tr.write_line(mask_text(f"{r.key}: {r.error.splitlines()[0]}", hidden), red=True)
            if manager.options.workdir.is_dir():
                tr.write_line(f"node logs of this run: {manager.options.workdir}")
        if bs.teardown_error is not None:
            tr.write_line(f"bannou: teardown failed: {mask_text(bs.teardown_error, bs.secrets())}", red=True)
            tr.write_line(f"bannou: remove what is left with: bannou-env clean --run-id {manager.run_id}")
        if bs.kept is not None:
            env = bs.kept
            tr.write_sep("=", "bannou environment kept")
            tr.write_line(f"environment {env.key} on {env.backend} is still running (run id {env.run_id})")
            for node, url in env.urls().items():
                tr.write_line(f"  {node}: {url}")
            tr.write_line(f"remove it with: bannou-env clean --run-id {env.run_id} --backend {env.backend}")
