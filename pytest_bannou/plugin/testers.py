"""pytest glue for a preset's testers: one item per (environment, tester), one result per case.

At collection ``add_tester_items`` appends a ``TesterItem`` (nodeid ``tester::<tester>[<env>]``)
for every tester of the environments ``--bannou-testers`` picks; the plan schedules it with the
tests of its environment, after them. Its ``runtest`` activates the environment like any test,
runs the tester (a local process, or a container on the environment's network on the Docker
backends) and the item passes or fails with the run. Right after the item, every case is
reported as a test of its own, ``tester::<tester>::<case>[<env>]``, through
``pytest_runtest_logreport`` with synthetic setup/call/teardown reports, so cases show in the
terminal, in the summary counts, in ``--junitxml`` and in ``--bannou-report``:

- passed -> passed; unclear -> passed, plus a warning in pytest's warnings summary;
- failed -> failed (the case's message and own output are the failure text);
- error (timeout, setup failure, no results ...) -> an error (failed setup);
- not_run -> skipped with reason ``not run: ...``.

Which testers run (``--bannou-testers``):

- ``never``: none;
- ``auto`` (default): the testers of each preset named with ``--bannou-preset``; without it, of
  each preset that has a selected test using its environment (plain preset environments only);
- ``always``: as ``auto``, plus environments derived by marker overrides
  (``@pytest.mark.preset("p", environment=...)``) run their preset's testers too.

``--bannou-testers-only`` deselects pytest's own tests and keeps the tester items.

In ``auto`` mode ``-k`` and ``-m`` select tester items by their ids like any test
(``-k "not tester"``, ``-k http-tester``); ``always`` adds them whatever ``-k``/``-m`` say,
``never`` leaves them out. The collection line says how many were added: each reports one
result per case, so pytest's final counts are larger than ``collected N items``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from .._support.masking import mask_text, topology_secrets
from .._support.names import file_name
from .._support.tracked import TRACKED_DIR
from ..backends import registry
from ..backends.base import Backend
from ..environment.environment import Environment
from ..environment.manager import EnvironmentManager
from ..errors import BannouError
from ..testers import run_tester
from ..testers.container import run_tester_container
from ..testers.endpoints import endpoint_variables, infra_node, process_endpoints
from ..testers.model import CaseResult, TesterRun, escape_controls
from ..topology.model import TesterSpec, Topology
from .markers import ITEM_ENV, ItemEnv
from .options import Settings

__all__ = ["endpoint_variables", "infra_node", "process_endpoints"]  # moved to testers.endpoints

#: attribute of the synthetic reports that carries a case's own data (survives xdist serialisation)
CASE_ATTR = "bannou_case"
#: attribute of a tester item's reports: which environment and tester, when it ran
RUN_ATTR = "bannou_tester"


class SessionView(Protocol):
    """What tester items use of the session (``session.BannouSession``, which imports this
    module: the protocol keeps the arrow one way)."""

    settings: Settings
    manager: EnvironmentManager
    item_keys: dict[str, str]

    def check_preset(self, name: str) -> None: ...
    def topology(self, info: ItemEnv) -> Topology: ...
    def environment_for(self, item: pytest.Item) -> Environment: ...
    def secrets(self) -> set[str]: ...


class BannouTesterWarning(UserWarning):
    """A tester case that is not a clear pass (edge-tester's "result unclear")."""


class TesterFailed(Exception):
    """The tester run had failed or errored cases (its message is the item's failure text)."""


def case_nodeid(tester: str, case: str, env_key: str) -> str:
    return f"tester::{tester}::{case}[{env_key}]"


def item_nodeid(tester: str, env_key: str) -> str:
    return f"tester::{tester}[{env_key}]"


# --- collection -------------------------------------------------------------------------------
def wanted_environments(bs: SessionView, infos: Iterable[ItemEnv]) -> list[ItemEnv]:
    """``ItemEnv``s whose testers run, in first-seen order (see the module docstring); ``infos``
    are the ``ItemEnv`` of each collected test (shared objects: few distinct ones)."""
    mode = bs.settings.testers
    if mode == "never":
        return []
    chosen: dict[str, ItemEnv] = {}
    for name in bs.settings.presets:
        chosen.setdefault(name, ItemEnv(name, name, True, True))
    if not bs.settings.presets or mode == "always":
        for info in {id(i): i for i in infos}.values():
            if not info.needs_env:
                continue
            if bs.settings.presets and info.preset not in bs.settings.presets:
                continue
            if info.key != info.preset and mode != "always":
                continue
            chosen.setdefault(info.key, info)
    return list(chosen.values())


def add_tester_items(
    bs: SessionView,
    session: pytest.Session,
    config: pytest.Config,
    items: list[pytest.Item],
    infos: Iterable[ItemEnv],
) -> None:
    """Append the tester items (and, with ``--bannou-testers-only``, deselect everything else).

    Called by the plugin after its own deselection and before the plan is made.
    """
    envs = wanted_environments(bs, infos)
    new: list[pytest.Item] = []
    for info in envs:
        try:
            bs.check_preset(info.preset)
            topology = bs.topology(info)
        except BannouError:
            continue  # the plugin reports it for the tests (or the --bannou-preset) that name it
        for spec in topology.testers:
            new.append(TesterItem.for_spec(session, spec, info, topology, bs))
    if bs.settings.testers == "auto":
        select_like_tests(new, config)
    if bs.settings.testers_only:
        others = [i for i in items if not isinstance(i, TesterItem)]
        if others:
            config.hook.pytest_deselected(items=others)
        items[:] = new
    else:
        items.extend(new)


def select_like_tests(items: list[pytest.Item], config: pytest.Config) -> None:
    """Apply ``-k`` and ``-m`` to ``items`` as pytest applies them to collected tests (tester
    items are added after pytest's own selection, which has already run)."""
    from _pytest.mark import deselect_by_keyword, deselect_by_mark

    deselect_by_keyword(items, config)
    deselect_by_mark(items, config)


def count_line(items: Iterable[pytest.Item]) -> str | None:
    """``bannou: 2 tester items (...)`` for the collection line; None without tester items."""
    n = sum(isinstance(i, TesterItem) for i in items)
    if not n:
        return None
    return f"bannou: {n} tester item{'s' * (n != 1)} (cases are reported one result each)"


# --- the item ---------------------------------------------------------------------------------
class TesterItem(pytest.Item):
    """Runs one tester against its environment; reports each case after itself."""

    spec: TesterSpec
    env_info: ItemEnv
    source: str
    bs: SessionView
    hidden: set[str]

    @classmethod
    def for_spec(
        cls, session: pytest.Session, spec: TesterSpec, info: ItemEnv, topology: Topology, bs: SessionView
    ) -> TesterItem:
        nodeid = item_nodeid(spec.name, info.key)
        item = cls.from_parent(session, name=nodeid, nodeid=nodeid)
        item.spec = spec
        item.env_info = info
        item.source = topology.source
        item.bs = bs
        item.hidden = topology_secrets([topology])  # tester output is masked with these
        item.run = None
        item.counted = False
        item.started = item.finished = None
        item.stash[ITEM_ENV] = info
        return item

    @property
    def env_key(self) -> str:
        return self.env_info.key

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return (self.source or "tester", None, self.nodeid)

    def mask(self, text: str) -> str:
        """Tester output may repeat any value it was given: secret ones never reach a report."""
        return mask_text(text, self.hidden | self.bs.secrets())

    def runtest(self) -> None:
        bs = self.bs
        env = bs.environment_for(self)
        self.hidden |= topology_secrets([env.topology])
        self.started = time.time()
        error = None
        try:
            # what the tester printed becomes nodeids and report text: controls escaped here, once
            self.run = escape_controls(execute(env, self.spec, Path(bs.manager.options.workdir)))
        except BannouError as exc:
            error = f"tester {self.spec.name!r} on {self.env_key}: {exc.message}"
        finally:
            self.finished = time.time()
        if error is not None:  # outside the except block: one message, no chained exception
            pytest.fail(self.mask(error), pytrace=False)
        run = self.run
        for case in run.cases:
            if case.outcome == "unclear" and not any(f"'{case.name}'" in w for w in run.warnings):
                warnings.warn(
                    BannouTesterWarning(
                        f"{case_nodeid(run.tester, case.name, self.env_key)}: result unclear "
                        "(counted as a pass, as upstream does)"
                    ),
                    stacklevel=1,
                )
        for text in run.warnings:
            warnings.warn(BannouTesterWarning(self.mask(f"{self.nodeid}: {text}")), stacklevel=1)
        if not run.ok:
            raise TesterFailed(self._failure_text(run))

    def _failure_text(self, run: TesterRun) -> str:
        names = [c.name for c in run.cases if c.is_failure]
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        text = f"tester {run.tester!r} on {self.env_key}: {run.counts_line()} (failed: {shown})"
        if run.exit_code is not None:
            text += f"; exit code {run.exit_code}"
        log = run.summary.get("log")
        if log:
            text += f"; log: {log}"
        return self.mask(text)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, TesterFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    # --- per-case reports ----------------------------------------------------------------------
    def case_reports(self) -> Iterator[pytest.TestReport]:
        """Synthetic setup/call/teardown reports for every case of the finished run."""
        run = self.run
        if run is None:
            return
        start = self.started or time.time()
        for case in run.cases:
            yield from self._reports(run, case, start)
            start += case.duration or 0.0

    def _reports(self, run: TesterRun, case: CaseResult, start: float) -> Iterator[pytest.TestReport]:
        nodeid = case_nodeid(run.tester, case.name, self.env_key)
        location = (self.source or "tester", None, nodeid)
        duration = case.duration or 0.0
        text = self.mask("\n".join(p for p in (case.message, case.output) if p) or case.outcome)
        data = {
            "tester": run.tester,
            "case": case.name,
            "env_key": self.env_key,
            "preset": self.env_info.preset,
            "outcome": case.outcome,
            "duration": case.duration,
            "text": text if case.outcome != "passed" else "",
            "warnings": [self.mask(w) for w in run.warnings]
            + (
                [f"{run.tester} reported 'result unclear' (counted as a pass upstream)"]
                if case.outcome == "unclear"
                else []
            ),
        }
        extra = {CASE_ATTR: data}
        props = [("bannou_preset", self.env_key), ("bannou_tester", run.tester)]

        # a passed case's own output, shown like a test's captured output (-rP)
        output = self.mask(case.output) if case.outcome != "failed" and case.output else ""

        def report(when: str, outcome: str, longrepr: Any = None, d: float = 0.0) -> pytest.TestReport:
            sections = [("Captured stdout call", output)] if when == "call" and output else []
            return pytest.TestReport(
                nodeid,
                location,
                {"bannou_tester": 1},
                outcome,  # type: ignore[arg-type]
                longrepr,
                when,  # type: ignore[arg-type]
                sections,
                d,
                start,
                start + d,
                list(props),
                **extra,
            )

        if case.outcome == "not_run":
            reason = case.message or "the tester stopped before this test"
            yield report("setup", "skipped", (location[0], 0, f"Skipped: not run: {reason}"))
        elif case.outcome == "error":
            yield report("setup", "failed", text, duration)
        else:
            yield report("setup", "passed")
            yield report(
                "call",
                "failed" if case.outcome == "failed" else "passed",
                text if case.outcome == "failed" else None,
                duration,
            )
        yield report("teardown", "passed")


class TesterReporter:
    """Emits the cases right after their tester item (registered by the plugin)."""

    def __init__(self, bs: SessionView) -> None:
        self.bs = bs
        self.session: pytest.Session | None = None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session

    def pytest_report_collectionfinish(self, config: pytest.Config, items: list[pytest.Item]) -> str | None:
        return count_line(items)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[Any]:
        result = yield
        if isinstance(item, TesterItem):
            logreport, forward = self._logreport(item)
            for rep in item.case_reports():
                self.bs.item_keys[rep.nodeid] = item.env_key  # counted in the environments table
                logreport(report=rep)
                forward(rep)
        return result

    def _logreport(self, item: pytest.Item) -> tuple[Any, Any]:
        """The logreport hook, and how a report reaches pytest-xdist's controller.

        An xdist worker's own logreport implementation insists that a report belongs to the item
        it is running; the case reports are sent to the controller the way it sends reports,
        around that check.
        """
        pm = item.config.pluginmanager
        interactor = next(
            (
                p
                for p in pm.get_plugins()
                if type(p).__name__ == "WorkerInteractor" and hasattr(p, "sendevent")
            ),
            None,
        )
        if interactor is None:
            return item.ihook.pytest_runtest_logreport, lambda rep: None
        hook = pm.subset_hook_caller("pytest_runtest_logreport", remove_plugins=[interactor])

        def forward(rep: pytest.TestReport) -> None:
            data = item.config.hook.pytest_report_to_serializable(config=item.config, report=rep)
            data["item_index"] = interactor.item_index
            data["worker_id"] = interactor.workerid
            data["testrun_uid"] = interactor.testrunuid
            interactor.sendevent("testreport", data=data)

        return hook, forward

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """On xdist's controller: count forwarded cases as collected (progress within 100 %)."""
        if (
            self.session is not None
            and getattr(report, CASE_ATTR, None) is not None
            and report.when == "teardown"
            and hasattr(report, "node")
        ):
            self.session.testscollected += 1

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
        rep = yield
        if isinstance(item, TesterItem):
            if call.when == "call" and item.run is not None and not item.counted:
                # the cases are tests too: count them before the item's own line shows progress
                item.session.testscollected += len(item.run.cases)
                item.counted = True
            setattr(
                rep,
                RUN_ATTR,
                {
                    "tester": item.spec.name,
                    "env_key": item.env_key,
                    "t_start": item.started,
                    "t_end": item.finished,
                },
            )
        return rep


# --- running ----------------------------------------------------------------------------------
def execute(env: Environment, spec: TesterSpec, run_dir: Path) -> TesterRun:
    """Run ``spec`` against ``env``: in a container on the environment's network, run by its
    backend, when the backend has one (``Backend.tester_network`` and
    ``Backend.run_tester_container``); a tester given as an ``image`` in a container (a pod)
    run by the deployed backend (``Backend.tester_images``: skipped with its reason when it
    cannot); else as a process."""
    workdir = run_dir / "testers" / file_name(env.key, fallback="env")
    backend = registry.find(env.backend)
    if backend is not None and backend.tester_network() is not None:
        return run_tester_container(spec, env, backend.run_tester_container, workdir=workdir)
    if spec.image:
        engine = image_engine(env, backend, spec.name)
        return run_tester_container(spec, env, engine.run_tester_container, workdir=workdir)
    return run_tester(
        spec,
        environment=process_endpoints(env, spec),
        workdir=workdir,
        run_id=env.run_id,
        state_dir=run_dir / TRACKED_DIR,  # where the sweep looks if this session dies
    )


def image_engine(env: Environment, backend: type[Backend] | None, tester: str) -> Backend:
    """The deployed backend that runs ``env``'s image testers; a pytest skip naming what is
    missing when it cannot (no Docker for the local backend, an environment another xdist
    worker deployed)."""
    engine = env.engine()
    if backend is not None and not isinstance(engine, backend):
        pytest.skip(
            f"tester {tester!r}: environment {env.key!r} on {env.backend} was deployed by another "
            "xdist worker (bannou_share = session); testers given as an `image` run on the worker "
            "that deployed it: use bannou_share = none to run them"
        )
    can = engine.tester_images()
    if not can:
        pytest.skip(f"tester {tester!r}: {can.reason}")
    return engine
