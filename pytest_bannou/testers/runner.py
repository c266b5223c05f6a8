"""Run one tester against a deployed environment and parse its output into a ``TesterRun``.

The environment a tester sees: the session's own environment, then the preset's tester
``environment:``, then the endpoint variables of the deployed environment (so one preset works on
every backend), and ``DAEMON_MODE=true`` always. ``--daemon`` is never added to the command: a
preset that wants it writes it in ``command:``.

A tester that outlives its deadline is killed with its whole process group and reported as an
``error`` case; when its output is an interactive menu the case says it is a configuration error
(daemon mode not honoured) rather than a slow test.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from .._support.names import file_name
from ..errors import BannouError
from ..topology.model import TesterSpec
from .interactive import DAEMON_HINT, looks_interactive
from .lines import iter_lines, tail
from .model import INCOMPLETE_CASE, NO_RESULTS_CASE, SETUP_CASE, TIMEOUT_CASE, CaseResult, TesterRun
from .process import ProcessOutcome, run_process
from .registry import get_parser

JUNIT_ENV = "BANNOU_TESTER_JUNIT"  # where a junit-format tester writes its XML ({junit} in argv)
_PYTHON_NAMES = ("python", "python3")


def tester_environment(
    endpoint_url: str,
    connect_endpoint: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The endpoint variables bannou's testers read, for a node reachable at ``endpoint_url``.

    ``BANNOU_HTTP_ENDPOINT`` (http-tester), ``OPENRESTY_HOST``/``OPENRESTY_PORT`` and
    ``CONNECT_ENDPOINT`` (edge-tester; ``host:port/connect`` unless given). ``extra`` (RabbitMQ,
    Redis settings, ...) is added last.
    """
    parts = urlsplit(endpoint_url if "://" in endpoint_url else f"http://{endpoint_url}")
    if not parts.hostname:
        raise BannouError(f"tester endpoint {endpoint_url!r} has no host (expected http://HOST:PORT)")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    env = {
        "BANNOU_HTTP_ENDPOINT": f"{parts.scheme}://{host}:{port}",
        "OPENRESTY_HOST": parts.hostname,
        "OPENRESTY_PORT": str(port),
        "CONNECT_ENDPOINT": connect_endpoint or f"{host}:{port}/connect",
    }
    if extra:
        env.update(extra)
    return env


def safe_name(name: str) -> str:
    """A tester name as a file name (its log and JUnit file in the run directory)."""
    return file_name(name, fallback="tester")


def tester_argv(spec: TesterSpec, junit_path: Path, workdir: Path) -> list[str]:
    """``spec.command`` with ``{junit}`` / ``{workdir}`` filled in; ``python`` means this
    interpreter (so the reference tester runs with pytest_bannou importable)."""
    if not spec.command:
        raise BannouError(
            f"tester {spec.name!r} has no `command`; running testers by `image` needs a container"
            " backend (use the docker backend, or give the tester a command for local runs)"
        )
    argv = [a.replace("{junit}", str(junit_path)).replace("{workdir}", str(workdir)) for a in spec.command]
    if argv[0] in _PYTHON_NAMES:
        argv[0] = sys.executable
    return argv


def tester_env(spec: TesterSpec, environment: Mapping[str, str], junit_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(spec.environment)
    env.update(environment)
    env["DAEMON_MODE"] = "true"
    env[JUNIT_ENV] = str(junit_path)
    return env


def run_tester(
    spec: TesterSpec,
    *,
    environment: Mapping[str, str],
    workdir: Path,
    deadline_s: float | None = None,
    run_id: str = "",
    state_dir: Path | None = None,
) -> TesterRun:
    """Run ``spec`` as a local process and parse its output with ``spec.format``.

    ``deadline_s`` (seconds from now) caps ``spec.timeout``. The log is kept at
    ``summary["log"]``. While it runs, its state file (naming ``run_id``) is in ``state_dir``,
    where the sweep finds it if the session dies (``process.run_process``). Only user mistakes
    raise (unknown format, no command); everything the tester does wrong is a result.
    """
    get_parser(spec.format)  # an unknown format fails before anything starts
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"tester-{safe_name(spec.name)}.log"
    junit_path = workdir / f"tester-{safe_name(spec.name)}.junit.xml"
    argv = tester_argv(spec, junit_path, workdir)
    env = tester_env(spec, environment, junit_path)
    timeout = spec.timeout if deadline_s is None else min(spec.timeout, max(0.0, deadline_s))
    if junit_path.exists():
        junit_path.unlink()
    try:
        outcome = run_process(
            argv,
            env=env,
            cwd=workdir,
            log_path=log_path,
            timeout=timeout,
            name=spec.name,
            run_id=run_id,
            state_dir=state_dir,
        )
    except OSError as exc:
        return _not_started(spec, argv, exc)
    return parse_outcome(spec, outcome, log_path, junit_path, argv=argv, timeout=timeout)


def parse_outcome(
    spec: TesterSpec,
    outcome: ProcessOutcome,
    log_path: Path,
    junit_path: Path | None,
    *,
    argv: list[str],
    timeout: float,
) -> TesterRun:
    """Parse what a finished (or killed) tester left: its log, or the JUnit XML it wrote."""
    parser = get_parser(spec.format)
    log_text = log_path.read_bytes().decode("utf-8", errors="replace") if log_path.exists() else ""
    exit_code = outcome.exit_code
    if spec.format == "junit":
        if junit_path is not None and junit_path.exists():
            run = parser.parse(
                junit_path.read_bytes().decode("utf-8", errors="replace"), exit_code, tester=spec.name
            )
        else:
            run = TesterRun(spec.name, spec.format, exit_code=exit_code)
            if not outcome.timed_out:
                run.cases.append(
                    CaseResult(
                        NO_RESULTS_CASE,
                        "error",
                        None,
                        f"the tester wrote no JUnit XML at {junit_path} (exit code {exit_code}); write it"
                        f" to ${JUNIT_ENV} or to the path `{{junit}}` expands to in the command",
                        _log_tail(log_text),
                    )
                )
        run.raw_tail = _log_tail(log_text)
    else:
        run = parser.parse(log_text, exit_code, tester=spec.name)
    if outcome.timed_out:
        _report_timeout(run, spec, log_text, timeout)
    run.summary.update(
        {
            "log": str(log_path),
            "command": argv,
            "duration": round(outcome.duration, 3),
            "timed_out": outcome.timed_out,
        }
    )
    return run


def _report_timeout(run: TesterRun, spec: TesterSpec, log_text: str, timeout: float) -> None:
    message = f"tester {spec.name!r} did not finish within {timeout:g} s and was killed"
    if looks_interactive(log_text):
        message += f": {DAEMON_HINT}"
    # the parser's guesses (no results, setup failure, incomplete run; for exit-code, its one
    # "exit code unknown" result) give way to the real reason
    guesses = (NO_RESULTS_CASE, SETUP_CASE, INCOMPLETE_CASE)
    run.cases = [] if spec.format == "exit-code" else [c for c in run.cases if c.name not in guesses]
    run.cases.append(CaseResult(TIMEOUT_CASE, "error", None, message, _log_tail(log_text)))


def _log_tail(log_text: str) -> str:
    lines = [ln.text for ln in iter_lines(log_text[-100_000:])]
    while lines and not lines[-1]:
        lines.pop()
    return tail(lines)


def _not_started(spec: TesterSpec, argv: list[str], exc: OSError) -> TesterRun:
    reason = exc.strerror or str(exc)
    message = (
        f"cannot start tester {spec.name!r}: {argv[0]}: {reason} (check `command:` of the tester in the"
        " preset and that the program is installed)"
    )
    return setup_error(spec, message, argv)


def setup_error(spec: TesterSpec, message: str, argv: list[str]) -> TesterRun:
    """A tester that never ran (cannot start, bad image, no network): one setup error."""
    return TesterRun(
        spec.name,
        spec.format,
        [CaseResult(SETUP_CASE, "error", None, message, "")],
        None,
        {"command": argv, "timed_out": False},
    )
