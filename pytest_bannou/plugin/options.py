"""The plugin's settings: one table of options, each with a CLI flag, an ini key and an
environment-variable twin, resolved with the precedence CLI > env var > ini > default.

No pytest import: ``register`` receives pytest's parser and ``resolve`` reads a config through
duck typing, so the table can also be printed or tested on its own.
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..backends.option_pairs import BackendOptionError, parse_backend_options
from ..environment.runs import DEFAULT_READY_TIMEOUT
from ..errors import BannouError
from ..preset.durations import parse_duration

DEFAULT_PRESET = "monolith"
DEFAULT_BACKEND = "local"


class OptionError(BannouError):
    """An option value that cannot be used (names the option, its source and the valid values)."""


@dataclass(frozen=True)
class Option:
    """One setting. ``kind``: str, list (repeatable / comma / os.pathsep separated), bool, float."""

    dest: str
    flag: str | None
    ini: str
    env: str
    kind: Literal["str", "list", "paths", "bool", "float", "choice", "plan"]
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    metavar: str | None = None


OPTIONS: tuple[Option, ...] = (
    Option(
        "bannou_preset",
        "--bannou-preset",
        "bannou_preset",
        "BANNOU_PRESET",
        "list",
        (),
        "run only the tests of this preset (repeatable; env BANNOU_PRESET is comma-separated); "
        "unmarked tests that use the environment run under it",
        metavar="NAME",
    ),
    Option(
        "bannou_backend",
        "--bannou-backend",
        "bannou_backend",
        "BANNOU_BACKEND",
        "str",
        DEFAULT_BACKEND,
        "backend that runs the environments: local, compose, swarm, kubernetes, portainer, or "
        "auto (the first available); default local",
        metavar="NAME",
    ),
    Option(
        "bannou_backend_option",
        "--bannou-backend-option",
        "bannou_backend_option",
        "BANNOU_BACKEND_OPTION",
        "list",
        (),
        "a backend-specific setting KEY=VALUE (repeatable; env comma-separated), e.g. "
        "kubeconfig=PATH, kubernetes_service_type=NodePort, url=https://portainer:9443, endpoint=local",
        metavar="KEY=VALUE",
    ),
    Option(
        "bannou_presets_dir",
        "--bannou-presets-dir",
        "bannou_presets_dir",
        "BANNOU_PRESETS_DIR",
        "paths",
        (),
        "directory searched for preset files before the built-in library (repeatable; "
        "env/ini: separated by os.pathsep)",
        metavar="DIR",
    ),
    Option(
        "bannou_plan",
        "--bannou-plan",
        "bannou_plan",
        "BANNOU_PLAN",
        "plan",
        None,
        "print the plan (groups, order, deploys, node starts) as text or json and exit "
        "without deploying anything",
        choices=("text", "json"),
        metavar="text|json",
    ),
    Option(
        "bannou_keep",
        "--bannou-keep",
        "bannou_keep",
        "BANNOU_KEEP",
        "bool",
        False,
        "leave the last environment running at the end and print how to reach and remove it",
    ),
    Option(
        "bannou_ready_timeout",
        "--bannou-ready-timeout",
        "bannou_ready_timeout",
        "BANNOU_READY_TIMEOUT",
        "float",
        DEFAULT_READY_TIMEOUT,
        "seconds a deployment or transition may take until every node is ready (default 120)",
        metavar="SECONDS",
    ),
    Option(
        "bannou_no_batch",
        "--bannou-no-batch",
        "bannou_no_batch",
        "BANNOU_NO_BATCH",
        "bool",
        False,
        "keep pytest's test order instead of batching tests by environment (for comparison)",
    ),
    Option(
        "bannou_no_gc_freeze",
        "--bannou-no-gc-freeze",
        "bannou_no_gc_freeze",
        "BANNOU_NO_GC_FREEZE",
        "bool",
        False,
        "do not move the objects alive at session start out of the garbage collector's reach "
        "(gc.freeze; see the README)",
    ),
    Option(
        "bannou_transition",
        "--bannou-transition",
        "bannou_transition",
        "BANNOU_TRANSITION",
        "choice",
        "diff",
        "how to switch environments: diff (restart only changed nodes, default) or full (teardown + deploy)",
        choices=("diff", "full"),
        metavar="diff|full",
    ),
    Option(
        "bannou_keep_on_failure",
        "--bannou-keep-on-failure",
        "bannou_keep_on_failure",
        "BANNOU_KEEP_ON_FAILURE",
        "bool",
        False,
        "like --bannou-keep, but only when a test failed or errored",
    ),
    Option(
        "bannou_reuse",
        "--bannou-reuse",
        "bannou_reuse",
        "BANNOU_REUSE",
        "bool",
        False,
        "attach to an environment kept by an earlier run when its preset hash matches instead of "
        "deploying again (a changed preset is redeployed)",
    ),
    Option(
        "bannou_matrix",
        "--bannou-matrix",
        "bannou_matrix",
        "BANNOU_MATRIX",
        "bool",
        False,
        'print {"include": [{"preset", "backends", "tests"}, ...]} as JSON (one line) for a CI '
        "matrix and exit without deploying anything",
    ),
    Option(
        "bannou_share",
        "--bannou-share",
        "bannou_share",
        "BANNOU_SHARE",
        "choice",
        "none",
        "under pytest-xdist: none (each worker deploys the presets it runs, default) or session "
        "(one environment per preset serves every worker; the controller tears it down)",
        choices=("none", "session"),
        metavar="none|session",
    ),
    Option(
        "bannou_testers",
        "--bannou-testers",
        "bannou_testers",
        "BANNOU_TESTERS",
        "choice",
        "auto",
        "run the presets' testers after their tests: auto (the testers of --bannou-preset presets or, "
        "without it, of the presets whose tests are selected), always (also of environments derived "
        "with marker overrides), never",
        choices=("auto", "always", "never"),
        metavar="auto|always|never",
    ),
    Option(
        "bannou_testers_only",
        "--bannou-testers-only",
        "bannou_testers_only",
        "BANNOU_TESTERS_ONLY",
        "bool",
        False,
        "run only the testers (of the presets --bannou-testers picks), deselecting pytest's own tests",
    ),
    Option(
        "bannou_report",
        "--bannou-report",
        "bannou_report",
        "BANNOU_REPORT",
        "str",
        "",
        "write results.json, junit.xml and report.html (tests and tester cases of every preset) into DIR",
        metavar="DIR",
    ),
    Option(
        "bannou_default_preset",
        None,
        "bannou_default_preset",
        "BANNOU_DEFAULT_PRESET",
        "str",
        DEFAULT_PRESET,
        "preset of the tests that use the environment without a preset marker (default monolith)",
    ),
    Option(
        "bannou_local_command",
        None,
        "bannou_local_command",
        "BANNOU_LOCAL_COMMAND",
        "str",
        "",
        "command the local backend runs for bannou nodes without their own command "
        "(shell-like words, e.g. 'dotnet bin/bannou-service.dll'); default: the reference node",
    ),
    Option(
        "bannou_amqp_url",
        "--bannou-amqp-url",
        "bannou_amqp_url",
        "BANNOU_AMQP_URL",
        "str",
        "",
        "RabbitMQ for heartbeats and mapping events (amqp://user:pass@host:port/vhost); default: the "
        "preset's rabbitmq infrastructure node, else messaging is off",
        metavar="URL",
    ),
    Option(
        "bannou_redis_url",
        "--bannou-redis-url",
        "bannou_redis_url",
        "BANNOU_REDIS_URL",
        "str",
        "",
        "Redis where the heartbeat monitor stores heartbeats (redis://host:port/db); default: the "
        "preset's redis infrastructure node",
        metavar="URL",
    ),
    Option(
        "bannou_heartbeat_interval",
        "--bannou-heartbeat-interval",
        "bannou_heartbeat_interval",
        "BANNOU_HEARTBEAT_INTERVAL",
        "float",
        1.0,
        "seconds between the heartbeats of the nodes (BANNOU_HEARTBEAT_INTERVAL of every node; default 1)",
        metavar="SECONDS",
    ),
    Option(
        "bannou_heartbeat_ttl",
        "--bannou-heartbeat-ttl",
        "bannou_heartbeat_ttl",
        "BANNOU_HEARTBEAT_TTL",
        "float",
        90.0,
        "seconds a stored heartbeat lives in Redis (orch:hb:APPID); a node silent for longer counts as "
        "gone and the restart policy says restart (default 90, bannou's)",
        metavar="SECONDS",
    ),
    Option(
        "bannou_degraded_threshold",
        "--bannou-degraded-threshold",
        "bannou_degraded_threshold",
        "BANNOU_DEGRADED_THRESHOLD",
        "float",
        300.0,
        "seconds a node may report degraded before the restart policy says restart (default 300, bannou's)",
        metavar="SECONDS",
    ),
)


@dataclass(frozen=True)
class Settings:
    """The resolved settings of one session."""

    presets: tuple[str, ...] = ()
    backend: str = DEFAULT_BACKEND
    presets_dirs: tuple[Path, ...] = ()
    plan: Literal["text", "json"] | None = None
    keep: bool = False
    ready_timeout: float = DEFAULT_READY_TIMEOUT
    batch: bool = True
    gc_freeze: bool = True
    transition: Literal["diff", "full"] = "diff"
    default_preset: str = DEFAULT_PRESET
    local_command: tuple[str, ...] | None = None
    testers: Literal["auto", "always", "never"] = "auto"
    testers_only: bool = False
    report: Path | None = None
    keep_on_failure: bool = False
    reuse: bool = False
    matrix: bool = False
    share: Literal["none", "session"] = "none"
    backend_options: Mapping[str, str] = field(default_factory=dict)  # BackendOptions.extra
    sources: Mapping[str, str] = field(default_factory=dict)  # dest -> "cli" | "env" | "ini" | "default"


# the ini default of the options where an empty value means nothing (``bannou_default_preset =``):
# pytest hands back the default for a key not written, "" for one written empty
UNSET_INI = "\x00unset"


def _empty_is_error(opt: Option) -> bool:
    """Whether an ini key written empty is a mistake (its option has a non-empty default)."""
    return opt.kind in ("str", "choice", "float") and opt.default not in ("", None)


def register(parser: Any) -> None:
    """Add the CLI options and ini keys to pytest's ``parser`` (group "bannou")."""
    group = parser.getgroup("bannou", "bannou test environments (pytest-bannou)")
    for opt in OPTIONS:
        ini_type = {"list": "args", "paths": "paths", "bool": "bool"}.get(opt.kind, "string")
        ini_default = {"list": [], "paths": [], "bool": False}.get(opt.kind, "")
        if _empty_is_error(opt):
            ini_default = UNSET_INI
        parser.addini(opt.ini, f"{opt.help} [env {opt.env}]", type=ini_type, default=ini_default)
        if opt.flag is None:
            continue
        help_text = f"{opt.help} [ini {opt.ini}, env {opt.env}]"
        if opt.kind in ("list", "paths"):
            group.addoption(
                opt.flag, action="append", dest=opt.dest, default=None, metavar=opt.metavar, help=help_text
            )
        elif opt.kind == "bool":
            group.addoption(opt.flag, action="store_true", dest=opt.dest, default=None, help=help_text)
        elif opt.kind == "plan":
            group.addoption(
                opt.flag,
                nargs="?",
                const="text",
                dest=opt.dest,
                default=None,
                choices=opt.choices,
                metavar=opt.metavar,
                help=help_text,
            )
        else:
            group.addoption(
                opt.flag,
                action="store",
                dest=opt.dest,
                default=None,
                choices=opt.choices or None,
                metavar=opt.metavar,
                help=help_text,
            )


def check_ini(getini: Callable[[str], Any]) -> None:
    """``OptionError`` for an ini key written with no value whose option has a default
    (``bannou_default_preset =`` would otherwise silently mean monolith). Needs pytest's
    ``getini`` with the defaults ``register`` gave; an empty environment variable counts as unset."""
    for opt in OPTIONS:
        if _empty_is_error(opt) and getini(opt.ini) == "":
            raise OptionError(
                f"ini key {opt.ini} is empty: give it a value (default {opt.default!r}) or remove the line"
            )


def where(dest: str, source: str, value: Any = None) -> str:
    """Where the value of option ``dest`` came from, as the user wrote it: ``--bannou-preset nope``,
    ``environment variable BANNOU_PRESET=nope`` or ``ini key bannou_preset = nope``."""
    opt = next(o for o in OPTIONS if o.dest == dest)
    text = _where(opt, source)
    if value is None:
        return text
    return {"cli": f"{text} {value}", "env": f"{text}={value}", "ini": f"{text} = {value}"}.get(source, text)


def resolve(
    getoption: Callable[[str], Any],
    getini: Callable[[str], Any],
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Settings from the CLI (``getoption(dest)``), the environment and the ini file.

    Raises ``OptionError`` naming the option and where its bad value came from.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for opt in OPTIONS:
        raw, source = _raw(opt, getoption, getini, environ)
        values[opt.dest] = _convert(opt, raw, source)
        sources[opt.dest] = source
    local = values["bannou_local_command"]
    try:
        local_command = tuple(shlex.split(local)) if local else None
    except ValueError as exc:
        raise OptionError(
            f"bannou_local_command ({sources['bannou_local_command']}): cannot split {local!r}: {exc}; "
            "write it as shell-like words, quoting paths with spaces"
        ) from None
    try:  # the parser bannou-env --backend-option shares
        where = _where(
            next(o for o in OPTIONS if o.dest == "bannou_backend_option"), sources["bannou_backend_option"]
        )
        backend_options = parse_backend_options(
            values["bannou_backend_option"], where, "--bannou-backend-option"
        )
    except BackendOptionError as exc:
        raise OptionError(exc.message) from None
    return Settings(
        presets=tuple(dict.fromkeys(values["bannou_preset"])),
        backend=values["bannou_backend"] or DEFAULT_BACKEND,
        presets_dirs=tuple(values["bannou_presets_dir"]),
        plan=values["bannou_plan"],
        keep=values["bannou_keep"],
        ready_timeout=values["bannou_ready_timeout"],
        batch=not values["bannou_no_batch"],
        gc_freeze=not values["bannou_no_gc_freeze"],
        transition=values["bannou_transition"],
        default_preset=values["bannou_default_preset"] or DEFAULT_PRESET,
        local_command=local_command,
        testers=values["bannou_testers"] or "auto",
        testers_only=values["bannou_testers_only"],
        report=Path(values["bannou_report"]).expanduser() if values["bannou_report"] else None,
        keep_on_failure=values["bannou_keep_on_failure"],
        reuse=values["bannou_reuse"],
        matrix=values["bannou_matrix"],
        share=values["bannou_share"] or "none",
        backend_options=backend_options,
        sources=sources,
    )


def option_values(
    dests: tuple[str, ...],
    getoption: Callable[[str], Any],
    getini: Callable[[str], Any],
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The converted values of the options ``dests`` (CLI > env > ini > default), for the rooms
    that take their settings as plain values (messaging's ``settings_from``)."""
    environ = os.environ if environ is None else environ
    values = {}
    for opt in OPTIONS:
        if opt.dest in dests:
            raw, source = _raw(opt, getoption, getini, environ)
            values[opt.dest] = _convert(opt, raw, source)
    return values


def _raw(
    opt: Option, getoption: Callable[[str], Any], getini: Callable[[str], Any], environ: Mapping[str, str]
) -> tuple[Any, str]:
    if opt.flag is not None:
        cli = getoption(opt.dest)
        if cli is not None and cli is not False:
            return cli, "cli"
    env = environ.get(opt.env)
    if env is not None and env.strip() != "":
        return env, "env"
    ini = getini(opt.ini)
    if ini not in (None, "", [], False, UNSET_INI):
        return ini, "ini"
    return opt.default, "default"


def _where(opt: Option, source: str) -> str:
    """Where a value came from, as the user wrote it: the flag, the variable or the ini key."""
    return {
        "cli": opt.flag or opt.ini,
        "env": f"environment variable {opt.env}",
        "ini": f"ini key {opt.ini}",
        "default": "default",
    }[source]


def _seconds(text: Any) -> float:
    """Seconds from ``90``, ``90s``, ``1m30s``, ``500ms`` (as in preset files); nan if none."""
    try:
        return parse_duration(text)
    except ValueError:
        return math.nan


def _convert(opt: Option, raw: Any, source: str) -> Any:
    where = _where(opt, source)
    if opt.kind == "list":
        items = raw if isinstance(raw, list | tuple) else [raw]
        return [p.strip() for item in items for p in str(item).split(",") if p.strip()]
    if opt.kind == "paths":
        if source == "ini":  # pytest already made them absolute, relative to the ini file
            return [Path(p) for p in raw]
        items = raw if isinstance(raw, list | tuple) else [raw]
        return [
            Path(p.strip()).expanduser() for item in items for p in str(item).split(os.pathsep) if p.strip()
        ]
    if opt.kind == "bool":
        if isinstance(raw, bool):
            return raw
        low = str(raw).strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off", ""):
            return False
        raise OptionError(f"{where}: {raw!r} is not a boolean; use 1/0, true/false, yes/no")
    if opt.kind == "float":
        try:
            value = float(raw)
        except (TypeError, ValueError):
            value = _seconds(raw)  # 90s, 1m30s: as in preset files
            if math.isnan(value):
                raise OptionError(
                    f"{where}: {raw!r} is not a number of seconds; e.g. {opt.flag}=60 (or 90s, 2m)"
                ) from None
        if not math.isfinite(value) or value <= 0:
            raise OptionError(f"{where}: {raw!r} must be more than 0 seconds and finite; e.g. {opt.flag}=60")
        return value
    if opt.kind in ("choice", "plan"):
        if raw is None:
            return None
        value = str(raw).strip().lower()
        if opt.kind == "plan" and value in ("1", "true", "yes", "on"):
            value = "text"
        if opt.kind == "plan" and value in ("0", "false", "no", "off"):
            return None
        if value not in opt.choices:
            raise OptionError(f"{where}: {raw!r} is not one of {', '.join(opt.choices)}")
        return value
    return str(raw).strip() if raw is not None else raw


def table() -> str:
    """The option table as text (README / --help cross-check)."""
    rows = [f"{o.flag or '-'} | ini {o.ini} | env {o.env} | default {o.default!r}" for o in OPTIONS]
    return "\n".join(rows)
