"""Property-based fuzzing of every input the user controls (issue 12, point 11): generated preset
files, ``bannou-env`` argument lists and tester transcripts go through the loader, the CLI and the
tester parsers. Whatever they are fed, only the plugin's own errors come out (``BannouError``
subclasses; exit status 0, 1 or 2, argparse's usage errors included), never a traceback.

Nothing is deployed: the CLI runs in-process with the deploy step replaced by ``WouldDeploy``
(an input that gets that far passed every check), and the subprocess runs only use commands that
cannot deploy. Run directories live in a private runs root (``tempfile.tempdir`` points into this
module's temporary directory), so the machine's shared one is neither read nor changed.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_bannou.backends import registry
from pytest_bannou.cli import environment_cmd, live_cmd
from pytest_bannou.cli import main as cli_main
from pytest_bannou.errors import BannouError, PresetError
from pytest_bannou.preset import PresetLibrary, load_file, resolve
from pytest_bannou.testers import known_formats
from pytest_bannou.testers.junit_writer import write_junit
from pytest_bannou.testers.model import TesterRun, escape_controls
from pytest_bannou.testers.registry import get_parser

# bounded: the whole file runs in well under a minute on a loaded 2-core machine
FUZZ = settings(
    max_examples=int(os.environ.get("BANNOU_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
RUN_ID = "bannou-0000f00d"  # well formed; no run of that id exists in the private runs root


class WouldDeploy(Exception):
    """Raised where the CLI would start deploying: the input passed every check before it."""


# ---- the private world every test runs in -----------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private runs root and a directory of fixed files (valid and broken inputs) to point
    arguments at; the deploy steps of ``deploy``/``update``/``rollback`` replaced by WouldDeploy."""
    base = tmp_path_factory.mktemp("fuzz")
    (base / "tmp").mkdir()
    files = base / "files"
    files.mkdir()
    (files / "empty.yaml").write_text("")
    (files / "list.yaml").write_text("- a\n- b\n")
    (files / "valid.yaml").write_text(
        "name: valid\ntopology:\n  nodes:\n    - name: main\n      services: [auth]\n"
    )
    (files / "bad-utf8.yaml").write_bytes(b"name: x\xff\xfe\n")
    (files / "results.json").write_text(json.dumps(RESULTS_SEED))
    (files / "notjson.json").write_text("{")
    (files / "log.txt").write_text(HTTP_LINES[0] + "\n" + HTTP_LINES[1] + "\n")
    (files / "adir").mkdir()
    (files / "adir" / "x.yaml").write_text("name: nope\n")
    os.mkfifo(files / "fifo.yaml")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tempfile, "tempdir", str(base / "tmp"))
        for var in ("BANNOU_LOCAL_STATE_DIR", "XDG_RUNTIME_DIR", "BANNOU_PRESETS_DIR", "BANNOU_BACKEND"):
            mp.delenv(var, raising=False)
        mp.setattr(environment_cmd, "EnvironmentManager", _would_deploy)
        mp.setattr(live_cmd, "_redeploy", _would_deploy)
        yield base


def _would_deploy(*args: Any, **kwargs: Any) -> Any:
    raise WouldDeploy


def run_cli(argv: list[str], stdin: bytes = b"") -> tuple[int | None, str, str]:
    """``bannou-env ARGV`` in-process: exit status (None: it would have deployed), stdout, stderr.

    Output goes through UTF-8 streams with strict errors, as in a terminal with a UTF-8 locale:
    text the CLI cannot print fails here as it would there. Any exception other than SystemExit
    and WouldDeploy propagates: that is the traceback a user would see."""
    out_b, err_b = io.BytesIO(), io.BytesIO()
    out = io.TextIOWrapper(out_b, encoding="utf-8", errors="strict", write_through=True)
    err = io.TextIOWrapper(err_b, encoding="utf-8", errors="strict", write_through=True)
    old_stdin = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code: int | None = cli_main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
            except WouldDeploy:
                code = None
            out.flush()
            err.flush()
    finally:
        sys.stdin = old_stdin
    return code, out_b.getvalue().decode("utf-8"), err_b.getvalue().decode("utf-8")


def assert_plugin_outcome(argv: list[str], code: int | None, err: str) -> None:
    assert code in (None, 0, 1, 2), (argv, code, err[-2000:])
    assert "Traceback" not in err, (argv, err[-2000:])


# ---- hostile values -----------------------------------------------------------------------------

NASTY_CHARS = ["\x00", "\x07", "\x1b[2J", "\r", "\udcff", "\ud800", "\ufffe", "\uffff", "\u202e", "💥", "é"]
NASTY_STRINGS = [
    "",
    " ",
    "-",
    "--",
    "=",
    "==",
    "..",
    "../../x",
    "/",
    "~",
    "null",
    "yes",
    "on",
    "0x1F",
    "1e400",
    ".nan",
    "nan",
    "inf",
    "-inf",
    "-1",
    "-0",
    "0",
    "١٢٣",  # Arabic-Indic digits: str.isdigit() is true for them
    "99999999999999999999999999",
    "${A:-${B}}",
    "${X:?boom}",
    "$${",
    "${",
    "%s%n",
    "{}",
    "[]",
    "'",
    '"',
    "a" * 300,
    "é" * 200,
]
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)
hostile_text = st.one_of(
    st.sampled_from(NASTY_STRINGS),
    any_text,
    st.lists(st.one_of(st.sampled_from(NASTY_CHARS), st.text(max_size=3)), max_size=6).map("".join),
    st.integers(1000, 20_000).map(lambda n: "x" * n),
)
hostile_number = st.one_of(
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 65535, 65536, 2**31, 2**63, 10**30, -(10**30)]),
    st.floats(allow_nan=True, allow_infinity=True),
)
hostile_scalar = st.one_of(st.none(), st.booleans(), hostile_number, hostile_text)
hostile_container = st.one_of(
    st.lists(hostile_scalar, max_size=3), st.dictionaries(hostile_text, hostile_scalar, max_size=3)
)
hostile_value = st.one_of(hostile_scalar, hostile_container)


def maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually ``valid``, sometimes anything at all (a list where a map goes, a bool for an int)."""
    return st.one_of(valid, valid, valid, hostile_value)


def sub_dict(fields: dict[str, st.SearchStrategy[Any]], extra_keys: bool = True) -> st.SearchStrategy[dict]:
    """A mapping holding some of ``fields`` (and now and then an unknown key)."""

    @st.composite
    def build(draw: st.DrawFn) -> dict:
        keys = draw(st.lists(st.sampled_from(sorted(fields)), unique=True, max_size=len(fields)))
        out = {k: draw(fields[k]) for k in keys}
        if extra_keys and draw(st.integers(0, 9)) == 0:
            out[draw(hostile_text)] = draw(hostile_value)
        return out

    return build()


NAMES = st.one_of(st.sampled_from(["main", "auth", "bannou", "fz", "redis", "a.b_c-1"]), hostile_text)
SERVICES = st.lists(
    st.one_of(st.sampled_from(["auth", "account", "connect", "orchestrator"]), hostile_text), max_size=4
)
ENVIRONMENT = st.dictionaries(
    st.one_of(st.sampled_from(["A", "DB_PASSWORD", "URL", "A=B", "A\x00"]), hostile_text),
    maybe(st.one_of(st.text(max_size=10), st.integers(), st.booleans(), st.just("postgres://u:pw@h/db"))),
    max_size=4,
)
DURATION = maybe(
    st.one_of(st.sampled_from(["1s", "2m", "500ms", "1h", "0", "-1s", "1e400s", "nan"]), hostile_number)
)
PORTS = maybe(
    st.one_of(
        st.lists(st.integers(-5, 70000), max_size=3),
        st.integers(-5, 70000),
        st.fixed_dictionaries({"http": st.integers(-5, 70000)}, optional={"https": hostile_scalar}),
    )
)
COMMAND = maybe(
    st.one_of(
        st.lists(st.text(max_size=8), max_size=3), st.sampled_from(["run it", "'unterminated", "a\x00b"])
    )
)
HEALTHCHECK = maybe(
    sub_dict(
        {
            "http": maybe(st.sampled_from(["/health", "health", ""])),
            "tcp": PORTS,
            "command": COMMAND,
            "log": maybe(st.sampled_from(["ready", "(", "[a-", "(a+)+$"])),
            "heartbeat": maybe(st.booleans()),
            "none": maybe(st.booleans()),
            "interval": DURATION,
            "timeout": DURATION,
            "retries": maybe(st.integers(-3, 100)),
            "startPeriod": DURATION,
        }
    )
)
RESOURCES = maybe(
    sub_dict({k: maybe(st.sampled_from(["1", "500m", "1Gi"])) for k in ("cpuLimit", "memoryLimit")})
)
NODE = sub_dict(
    {
        "name": maybe(NAMES),
        "appId": maybe(NAMES),
        "daprAppId": maybe(NAMES),
        "services": maybe(SERVICES),
        "layers": maybe(st.lists(st.sampled_from(["AppFoundation", "GameFeatures", "Nope"]), max_size=2)),
        "replicas": maybe(st.integers(-2, 5)),
        "resources": RESOURCES,
        "environment": maybe(ENVIRONMENT),
        "meshEnabled": maybe(st.booleans()),
        "image": maybe(st.sampled_from(["bannou:latest", "redis:7", ""])),
        "command": COMMAND,
        "ports": PORTS,
        "volumes": maybe(st.lists(st.sampled_from(["/a:/b", "x", "../../etc:/etc"]), max_size=2)),
        "healthcheck": HEALTHCHECK,
        "dependsOn": maybe(st.lists(NAMES, max_size=2)),
    }
)
INFRA = maybe(
    sub_dict(
        {
            "enabled": maybe(st.sampled_from([True, False, "${BANNOU_INFRA:-false}"])),
            "version": maybe(st.sampled_from(["7", 8.0, "3.12-management"])),
            "image": maybe(st.text(max_size=10)),
            "ports": PORTS,
            "healthcheck": HEALTHCHECK,
            "type": maybe(st.sampled_from(["openresty", "nginx", "bogus"])),
            "environment": maybe(ENVIRONMENT),
        }
    )
)
TESTER = sub_dict(
    {
        "name": maybe(NAMES),
        "image": maybe(st.sampled_from(["http-tester:latest", ""])),
        "command": COMMAND,
        "environment": maybe(ENVIRONMENT),
        "format": maybe(st.sampled_from(["http-tester", "edge-tester", "junit", "exit-code", "trx"])),
        "timeout": DURATION,
        "daemon": maybe(st.booleans()),
        "target": maybe(NAMES),
    }
)
POOL = sub_dict(
    {
        "poolType": maybe(NAMES),
        "plugin": maybe(st.text(max_size=5)),
        "minInstances": maybe(st.integers(-1, 5)),
        "maxInstances": maybe(st.integers(-1, 5)),
        "scaleUpThreshold": maybe(st.floats(allow_nan=True)),
        "idleTimeoutMinutes": maybe(st.floats(allow_nan=True)),
    }
)
PRESET = sub_dict(
    {
        "name": st.one_of(st.just("fz"), st.just("fz"), hostile_text),
        "description": maybe(st.text(max_size=20)),
        "category": maybe(st.text(max_size=10)),
        "extends": maybe(
            st.sampled_from(["monolith", "fz", "split-auth", "nosuch", "../monolith", "x" * 300])
        ),
        "topology": maybe(
            sub_dict(
                {
                    "nodes": maybe(st.lists(maybe(NODE), max_size=3)),
                    "infrastructure": maybe(
                        st.dictionaries(
                            st.sampled_from(["redis", "rabbitmq", "ingress", "mysql", "weird"]),
                            INFRA,
                            max_size=3,
                        )
                    ),
                }
            )
        ),
        "environment": maybe(ENVIRONMENT),
        "requiredBackends": maybe(st.lists(st.sampled_from(["local", "docker-compose", "nope"]), max_size=2)),
        "processingPools": maybe(st.lists(maybe(POOL), max_size=2)),
        "testers": maybe(st.lists(maybe(TESTER), max_size=2)),
    },
    extra_keys=True,
)

# YAML only text can say: anchors and aliases (also recursive ones), merge keys, tags, deep nesting
YAML_SHAPES = st.one_of(
    st.sampled_from(
        [
            "name: fz\ntopology: &t {nodes: [{name: a, dependsOn: *t}]}\n",
            "name: fz\ntopology: &t\n  nodes: &n [*n]\n",
            "name: fz\nenvironment: &e {A: 1, <<: *e}\n",
            "name: fz\nx: &a [1]\ntopology: {nodes: [{name: a, <<: *a}]}\n",
            "name: fz\ntopology:\n  nodes:\n    - &n {name: a}\n    - *n\n    - *n\n",
            "name: !!python/object:os.system x\n",
            "name: !!binary aGVsbG8=\n",
            "name: fz\nenvironment: {A: !!float .nan, B: !!int 0x7fffffffffffffffffff}\n",
            "name: fz\n? [a, b]\n: c\n",
            "name: fz\nenvironment: {? {a: 1} : 2}\n",
            "%YAML 1.1\n---\nname: fz\n---\nname: two\n",
            'name: fz\ndescription: "\\ud800\\udcff\\0\\x1b"\n',
            "\ufeffname: fz\n",
            "name: fz\ntopology:\n\tnodes: []\n",
            "a: &a ['lol','lol']\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
            "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nname: fz\n",
        ]
    ),
    st.builds(
        lambda n: "name: fz\nenvironment: " + "[" * n + "]" * n + "\n", st.sampled_from([50, 500, 5000])
    ),
    st.builds(
        lambda n: "name: fz\nenvironment: " + "{a: " * n + "1" + "}" * n + "\n", st.sampled_from([50, 2000])
    ),
    st.builds(
        lambda n: "name: fz\n" + "".join("  " * i + f"k{i}:\n" for i in range(n)) + "  " * n + "v\n",
        st.sampled_from([10, 300]),
    ),
    st.builds(lambda n: "name: " + "x" * n + "\n", st.sampled_from([64, 100_000])),
)


def dump(tree: Any) -> bytes:
    """The tree as YAML (lone surrogates written as escapes, so the loader decodes them again)."""
    text = yaml.safe_dump(tree, sort_keys=False, allow_unicode=True, width=120)
    return text.encode("utf-8", "surrogatepass")


def preset_bytes() -> st.SearchStrategy[bytes]:
    return st.one_of(
        PRESET.map(dump),
        PRESET.map(dump),
        hostile_value.map(dump),
        YAML_SHAPES.map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.binary(max_size=200),
        st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.tuples(PRESET.map(dump), st.binary(max_size=8), st.integers(0, 400)).map(
            lambda t: t[0][: t[2]] + t[1] + t[0][t[2] :]
        ),
    )


def write_preset(world: Path, data: bytes) -> Path:
    d = world / "presets"
    d.mkdir(exist_ok=True)
    path = d / "fz.yaml"
    path.write_bytes(data)
    return path


# ---- the loader --------------------------------------------------------------------------------


@FUZZ
@given(
    data=preset_bytes(),
    env=st.dictionaries(st.sampled_from(["A", "B", "BANNOU_INFRA"]), hostile_text, max_size=2),
)
def test_loader_raises_only_preset_errors(world: Path, data: bytes, env: dict[str, str]) -> None:
    path = write_preset(world, data)
    try:
        preset = load_file(path, environ=env)
        resolve(preset, environment={"DB_PASSWORD": "pw", "K": "\udcff"}, replicas={"main": 2})
        PresetLibrary([path.parent], environ=env).resolve("fz")
    except PresetError as exc:
        assert exc.problems and all(str(p) for p in exc.problems)
    except BannouError:
        pass


# ---- the CLI, in-process -----------------------------------------------------------------------


def _could_be_an_argument(text: str) -> bool:
    """What ``sys.argv`` can hold: no NUL; surrogates only as undecodable bytes (U+DC80..U+DCFF)."""
    if "\x00" in text:
        return False
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        return False
    return True


argv_text = hostile_text.filter(_could_be_an_argument)


def world_path(world: Path, fifo: bool = False) -> st.SearchStrategy[str]:
    """Paths to point arguments at. A FIFO only for preset files, which are refused unless regular:
    a tester log or results file may well be a pipe (``<(...)``), read until its writer ends."""
    files = world / "files"
    names = [
        "empty.yaml",
        "list.yaml",
        "valid.yaml",
        "bad-utf8.yaml",
        "results.json",
        "notjson.json",
        "log.txt",
        "adir",
        "adir/x.yaml",
        *(["fifo.yaml"] if fifo else []),
        "missing.yaml",
        "missing/deeper/x",
        "log.txt/inside",
        "x" * 300,
        "x" * 300 + "/y",
    ]
    return st.one_of(
        st.sampled_from([str(files / n) for n in names]),
        st.sampled_from(["/", "/proc/nope/x", "/nonexistent/dir", ".", ""]),
        argv_text,
    )


def out_path(world: Path) -> st.SearchStrategy[str]:
    files = world / "files"
    fresh = st.integers(0, 10**6).map(lambda i: str(world / "out" / f"o{i}"))
    blocked = [
        str(files / "log.txt"),
        str(files / "log.txt" / "x"),
        str(files / ("y" * 300)),
        "/proc/nope",
        "/",
    ]
    return st.one_of(fresh, st.sampled_from(blocked))


KNOWN_PRESETS = ["monolith", "split-auth", "test-http"]
PRESET_NAME = st.one_of(
    st.sampled_from([*KNOWN_PRESETS, "nosuch", "fz", "x" * 300, "../monolith"]), argv_text
)
RUN_IDS = st.one_of(
    st.sampled_from([RUN_ID, "bannou-deadbeef-ci-1", "../" + RUN_ID, "bannou-", "/tmp"]), argv_text
)
KV = st.one_of(
    st.tuples(st.sampled_from(["A", "main", "DB_PASSWORD", "bannou", ""]), argv_text).map("=".join),
    st.tuples(argv_text, argv_text).map("=".join),
    argv_text,
)
NUMBER_ARG = st.one_of(
    st.sampled_from(["nan", "inf", "-5", "0", "1", "1e309", "60s", "1m30s", "99999999999", "0x10", "\u0661"]),
    argv_text,
)
BACKEND_ARG = st.one_of(st.sampled_from(["local", "compose", "nope", "auto", "all"]), argv_text)


def opt(flag: str, values: st.SearchStrategy[str], most: int = 2) -> st.SearchStrategy[list[str]]:
    """``flag VALUE`` zero or more times (sometimes the flag without its value)."""
    return st.lists(
        st.one_of(values.map(lambda v: [flag, v]), values.map(lambda v: [f"{flag}={v}"]), st.just([flag])),
        max_size=most,
    ).map(lambda pairs: [a for p in pairs for a in p])


def change_json() -> st.SearchStrategy[str]:
    change = sub_dict(
        {
            "action": maybe(
                st.sampled_from(["add-node", "remove-node", "scale", "move-service", "update-env", "x"])
            ),
            "nodeName": maybe(NAMES),
            "services": maybe(SERVICES),
            "replicas": maybe(st.integers(-1, 5)),
            "environment": maybe(ENVIRONMENT),
            "nodeConfig": maybe(NODE),
        }
    )

    def to_json(value: Any) -> str:
        return json.dumps(value, allow_nan=True).replace("\\u0000", "\\u0000")  # NUL stays escaped

    return st.one_of(
        change.map(to_json),
        hostile_value.map(to_json),
        st.sampled_from(
            [
                "{",
                '{"action": NaN}',
                '{"a": 1e999}',
                "{" + '"a":' * 3000 + "1" + "}" * 3000,
                '{"action": "add-node", "nodeConfig": {"name": "x", "resources": '
                + '{"a": ' * 500
                + "1"
                + "}" * 502,
            ]
        ),
    )


SHORT_CHANGES = st.one_of(
    st.tuples(
        st.sampled_from(["add-node:", "remove-node:", "move-service:", "scale:", "update-env:", "nope:", ""]),
        argv_text,
    ).map("".join),
    st.sampled_from(
        [
            "scale:main=2",
            "add-node:../../x=auth",
            "update-env:*:A=1",
            "update-env:main:A\x01=1",
            "scale:main=-1",
        ]
    ),
)


def argv_lists(world: Path) -> st.SearchStrategy[list[str]]:
    """Argument lists of every subcommand, with hostile values, plus token soup."""
    p = world_path(world)
    pf = world_path(world, fifo=True)  # preset files and directories
    o = out_path(world)
    fmt = st.one_of(st.sampled_from([*known_formats(), "trx"]), argv_text)

    def cat(*parts: st.SearchStrategy[Any]) -> st.SearchStrategy[list[str]]:
        return st.tuples(*parts).map(lambda xs: [a for x in xs for a in (x if isinstance(x, list) else [x])])

    def flag(f: str) -> st.SearchStrategy[list[str]]:
        return st.sampled_from([[], [f]])

    commands = [
        cat(st.just(["presets", "list"]), opt("--dir", pf), flag("--json")),
        cat(
            st.just(["presets", "show"]),
            st.one_of(PRESET_NAME, pf),
            opt("--dir", pf, 1),
            opt("--env", KV),
            opt("--replicas", KV),
            flag("--json"),
        ),
        cat(
            st.just(["presets", "validate"]),
            st.lists(st.one_of(PRESET_NAME, pf), min_size=1, max_size=3),
            opt("--dir", pf, 1),
        ),
        st.just(["presets", "schema"]),
        # deploy: the step that would deploy raises WouldDeploy
        cat(
            st.just(["deploy"]),
            PRESET_NAME,
            opt("--backend", BACKEND_ARG, 1),
            opt("--presets-dir", pf, 1),
            opt("--env", KV),
            opt("--replicas", KV),
            opt("--ready-timeout", NUMBER_ARG, 1),
            opt("--local-command", st.one_of(argv_text, st.sampled_from(["'unterminated", "a b"])), 1),
        ),
        cat(st.just(["status"]), opt("--run-id", RUN_IDS, 1)),
        cat(
            st.just(["logs"]),
            RUN_IDS,
            argv_text,
            opt("--tail", NUMBER_ARG, 1),
            opt("--backend", BACKEND_ARG, 1),
        ),
        # clean: one run id of the private runs root, local or unknown backends only (never a sweep)
        cat(
            st.just(["clean", "--run-id"]),
            RUN_IDS,
            opt("--backend", st.one_of(st.just("local"), argv_text).filter(_not_a_backend_of_the_machine), 1),
        ),
        cat(st.just(["clean", "--all-stale", "--run-id", RUN_ID])),
        cat(
            st.just(["render"]),
            PRESET_NAME,
            st.just(["--backend", "kubernetes"]),
            opt("--dir", pf, 1),
            opt("--run-id", argv_text, 1),
            opt("--env", KV),
            opt("--replicas", KV),
            opt("-o", o, 1),
        ),
        cat(
            st.just(["testers", "parse"]),
            opt("--format", fmt, 1),
            st.one_of(p, st.just("-")),
            flag("--json"),
            opt("--junit", o, 1),
            opt("--exit-code", NUMBER_ARG, 1),
            opt("--tester", argv_text, 1),
        ),
        cat(st.just(["report", "merge"]), st.lists(p, min_size=1, max_size=3), opt("-o", o, 1)),
        cat(st.just(["report", "render"]), p, opt("-o", o, 1)),
        cat(
            st.just(["update"]),
            RUN_IDS,
            st.lists(st.one_of(change_json(), SHORT_CHANGES), min_size=0, max_size=3),
            opt("--ready-timeout", NUMBER_ARG, 1),
        ),
        cat(st.just(["rollback"]), RUN_IDS, opt("--ready-timeout", NUMBER_ARG, 1)),
    ]
    tokens = st.one_of(
        st.sampled_from(
            [
                "presets",
                "list",
                "show",
                "deploy",
                "status",
                "logs",
                "clean",
                "render",
                "testers",
                "parse",
                "report",
                "merge",
                "update",
                "rollback",
                "--json",
                "--env",
                "--dir",
                "--tail",
                "-o",
                "--format",
                "--help",
                "-h",
                "--run-id",
                "--backend",
                "--ready-timeout",
                "--",
                "-",
            ]
        ),
        argv_text,
    )
    soup = st.lists(tokens, max_size=6).filter(_no_sweep)
    return st.one_of(*commands, soup)


def _not_a_backend_of_the_machine(name: str) -> bool:
    """Unknown backend names (and ``local``): ``clean`` never reaches a shared engine."""
    if name == "local":
        return True
    if name.strip().lower() in ("all", "auto"):
        return False
    try:
        return registry.canonical(name) not in registry.known_names()
    except BannouError:
        return True


def _no_sweep(argv: list[str]) -> bool:
    """Token soup never runs ``clean`` (a sweep of the machine) or ``deploy`` of a real preset."""
    return "clean" not in argv


@FUZZ
@given(data=st.data())
def test_cli_only_exits_with_the_plugins_own_statuses(world: Path, data: st.DataObject) -> None:
    argv = data.draw(argv_lists(world))
    stdin = data.draw(st.sampled_from([b"", HTTP_LINES[0].encode(), b"\xff\xfe\x00"]))
    code, _out, err = run_cli(argv, stdin)
    assert_plugin_outcome(argv, code, err)


@FUZZ
@given(data=preset_bytes(), data2=st.data())
def test_cli_on_generated_preset_files(world: Path, data: bytes, data2: st.DataObject) -> None:
    path = write_preset(world, data)
    d = str(path.parent)
    argv = data2.draw(
        st.sampled_from(
            [
                ["presets", "validate", str(path)],
                ["presets", "show", str(path), "--json"],
                ["presets", "show", "fz", "--dir", d, "--env", "DB_PASSWORD=x"],
                ["presets", "list", "--dir", d],
                ["render", "fz", "--backend", "kubernetes", "--dir", d, "--replicas", "main=3"],
                ["deploy", "fz", "--presets-dir", d, "--backend", "local"],
            ]
        )
    )
    code, _out, err = run_cli(argv)
    assert_plugin_outcome(argv, code, err)


# planted run records: what `status`, `logs`, `update` and `rollback` read from a run directory
RUN_INFO = sub_dict(
    {
        "run_id": maybe(st.just(RUN_ID)),
        "environment": maybe(st.text(max_size=10)),
        "backend": maybe(st.sampled_from(["local", "nope", ""])),
        "kept": maybe(st.booleans()),
        "owner_pid": maybe(st.sampled_from([0, 1, -1, 2**40, 999_999_999])),
        "urls": maybe(
            st.dictionaries(
                st.text(max_size=5),
                maybe(
                    st.sampled_from(
                        ["", "not a url", "http://[::1", "http://127.0.0.1:1", "ftp://x", "http://"]
                    )
                ),
                max_size=2,
            )
        ),
    },
    extra_keys=True,
)


@FUZZ
@given(info=st.one_of(RUN_INFO, hostile_value), data=st.data())
def test_cli_on_planted_run_records(world: Path, info: Any, data: st.DataObject) -> None:
    from pytest_bannou.environment.runs import RUN_INFO as RUN_INFO_FILE
    from pytest_bannou.environment.runs import run_directory, runs_root

    runs_root()
    workdir = run_directory(RUN_ID)
    workdir.mkdir(mode=0o700, exist_ok=True)
    (workdir / RUN_INFO_FILE).write_text(json.dumps(info, allow_nan=True))
    argv = data.draw(
        st.sampled_from(
            [
                ["status"],
                ["status", "--run-id", RUN_ID],
                ["logs", RUN_ID, "main", "--tail", "3"],
                ["update", RUN_ID, "scale:main=2"],
                ["rollback", RUN_ID],
            ]
        )
    )
    code, _out, err = run_cli(argv)
    assert_plugin_outcome(argv, code, err)


# ---- tester transcripts ------------------------------------------------------------------------

HTTP_LINES = [
    "Running in daemon mode - executing tests sequentially with fail-fast on service crashes...",
    "Running test: LoginFlow",
    "✅ Test LoginFlow completed successfully: ok",
    "❌ Test LoginFlow failed: boom",
    "❌ Test LoginFlow failed with exception: System.Exception",
    "🚨 FATAL: Service crash detected in test 'LoginFlow'. Exiting immediately to prevent cascade failures.",
    "All tests completed in daemon mode. Passed: 41, Failed: 1",
    "All tests completed in daemon mode. Passed: 99999999999999999999999, Failed: -1",
    "❌ 1 test(s) failed - returning exit code 1",
    "⏳ waiting for http://localhost:5012/health",
]
EDGE_LINES = [
    "✅ Basic WebSocket connectivity test PASSED",
    "🔄 Running full edge test suite in daemon mode...",
    "   Total tests registered: 137",
    "━" * 70,
    "📋 Running: SplitRouting - Deploy Split Topology",
    "✅ Test SplitRouting - Deploy Split Topology PASSED",
    "❌ Test Capability Flow FAILED",
    "❌ Test Capability Flow FAILED with exception: oops",
    "⚠️ Test Meta Endpoints completed (result unclear)",
    "📊 TEST SUMMARY",
    "   Total:  137",
    "   Passed: 136",
    "   Failed: 1",
    "❌ Failed tests:",
    "   - Capability Flow",
    "   Passed: 1e999",
]
OTHER_LINES = [
    "2024-01-01T00:00:00.0000000Z ",
    "\x1b[31mred\x1b[0m",
    "Select an option:",
    "1) Run all tests",
    '<?xml version="1.0"?><testsuites><testsuite name="s"><testcase name="a"/></testsuite></testsuites>',
    '<testsuite tests="x"><testcase name="b" time="nan"><failure message="\x01"/></testcase></testsuite>',
    '<testsuites><testsuite tests="nan" failures="1e999" errors="-inf" skipped="1e300"/></testsuites>',
    '<testsuite><testcase name="c" time="inf"><skipped/></testcase></testsuite>',
    "<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>",
    "<testsuite>" * 200,
    "]]>",
]
LINE = st.one_of(
    st.sampled_from(HTTP_LINES + EDGE_LINES + OTHER_LINES),
    st.tuples(st.sampled_from(HTTP_LINES + EDGE_LINES), hostile_text).map(
        lambda t: t[0].replace("LoginFlow", t[1])
    ),
    st.tuples(st.sampled_from(["Running test: ", "📋 Running: ", "✅ Test ", "❌ Test "]), hostile_text).map(
        "".join
    ),
    hostile_text,
)
TRANSCRIPT = st.tuples(
    st.lists(LINE, max_size=25), st.sampled_from(["\n", "\r\n", "\r", "\x00", "\n\n"]), st.booleans()
).map(lambda t: t[1].join(t[0]) + (t[1] if t[2] else ""))
EXIT_CODES = st.one_of(
    st.none(), st.sampled_from([0, 1, 2, 139, 137, -9, 255, 2**31, -(2**63)]), st.integers()
)


@FUZZ
@given(
    text=TRANSCRIPT,
    fmt=st.sampled_from(known_formats()),
    exit_code=EXIT_CODES,
    tester=st.none() | hostile_text,
)
def test_tester_parsers_never_raise(
    world: Path, text: str, fmt: str, exit_code: int | None, tester: str | None
) -> None:
    run = get_parser(fmt).parse(text, exit_code, tester=tester)
    assert isinstance(run, TesterRun)
    shown = escape_controls(run)
    json.loads(json.dumps(shown.to_dict(), ensure_ascii=False).encode("utf-8").decode("utf-8"))
    shown.counts_line()
    junit = world / "out" / "fuzz-junit.xml"
    junit.parent.mkdir(exist_ok=True)
    write_junit(run, junit)
    ET.parse(junit)


@FUZZ
@given(text=TRANSCRIPT, fmt=st.sampled_from(known_formats()), data=st.data())
def test_cli_testers_parse_on_generated_transcripts(
    world: Path, text: str, fmt: str, data: st.DataObject
) -> None:
    log = world / "out" / "fuzz-log.txt"
    log.parent.mkdir(exist_ok=True)
    log.write_bytes(text.encode("utf-8", "surrogatepass"))
    extra = data.draw(st.sampled_from([[], ["--json"], ["--exit-code", "139"], ["--tester", "\udcff\x1b"]]))
    argv = ["testers", "parse", "--format", fmt, str(log), *extra, "--junit", str(world / "out" / "j.xml")]
    code, _out, err = run_cli(argv)
    assert code in (0, 1), (argv, code, err[-2000:])
    assert "Traceback" not in err


# ---- report files ------------------------------------------------------------------------------

RESULTS_SEED = {
    "schema_version": 1,
    "run_id": "bannou-0000f00d",
    "backend": "local",
    "started_at": 1.0,
    "finished_at": 2.0,
    "presets": [{"env_key": "monolith", "preset": "monolith", "nodes": ["bannou"], "deploy_s": 0.5}],
    "tests": [
        {"nodeid": "t.py::a[monolith]", "preset": "monolith", "outcome": "failed", "longrepr_summary": "x"}
    ],
}


def _paths(data: Any, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _paths(v, (*prefix, i))


@st.composite
def results_documents(draw: st.DrawFn) -> bytes:
    doc = json.loads(json.dumps(RESULTS_SEED))
    for _ in range(draw(st.integers(0, 4))):
        path = draw(st.sampled_from(list(_paths(doc))))
        value = draw(hostile_value)
        if not path:
            doc = value
            continue
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        parent[path[-1]] = value
    text = json.dumps(doc, allow_nan=True, ensure_ascii=draw(st.booleans()))
    return text.encode("utf-8", "surrogatepass")


@FUZZ
@given(
    doc=st.one_of(results_documents(), st.binary(max_size=50)), command=st.sampled_from(["merge", "render"])
)
def test_cli_report_on_generated_results(world: Path, doc: bytes, command: str) -> None:
    src = world / "out" / "results-in.json"
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(doc)
    inputs = [str(src), str(src)] if command == "merge" else [str(src)]
    argv = ["report", command, *inputs, "-o", str(world / "out" / "report")]
    code, _out, err = run_cli(argv)
    assert code in (0, 1), (argv, code, err[-2000:])
    assert "Traceback" not in err


# ---- a few through a real process --------------------------------------------------------------


def _real(argv: list[str], world: Path, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    # strict UTF-8 output, as in a terminal with a UTF-8 locale (en_US.UTF-8)
    env = {**os.environ, "TMPDIR": str(world / "tmp"), "PYTHONIOENCODING": "utf-8:strict"}
    for var in ("BANNOU_LOCAL_STATE_DIR", "XDG_RUNTIME_DIR", "BANNOU_PRESETS_DIR"):
        env.pop(var, None)
    return subprocess.run(
        [sys.executable, "-m", "pytest_bannou.cli", *argv],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=120,
    )


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_real_process_reports_bad_input_without_a_traceback(world: Path, data: st.DataObject) -> None:
    """Arguments with undecodable bytes (lone surrogates in ``sys.argv``) and hostile stdin reach
    a real ``bannou-env``, whose output streams are the real ones."""
    preset = write_preset(world, data.draw(preset_bytes()))
    weird = data.draw(argv_text)
    argv = data.draw(
        st.sampled_from(
            [
                ["presets", "validate", str(preset), weird],
                ["testers", "parse", "--format", "http-tester", "-", "--tester", weird],
                ["deploy", weird, "--presets-dir", str(preset.parent)],
                ["logs", weird, "main", "--tail", weird],
                ["report", "render", weird, "-o", str(world / "out" / "r")],
                ["update", RUN_ID, weird],
            ]
        )
    )
    if argv[0] == "deploy" and weird in PresetLibrary([preset.parent]).names():
        return  # never deploy
    stdin = data.draw(TRANSCRIPT).encode("utf-8", "surrogatepass")
    proc = _real(argv, world, stdin)
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode in (0, 1, 2), (argv, proc.returncode, err[-2000:])
    assert "Traceback" not in err, (argv, err[-2000:])


def test_strategies_reach_past_the_checks(world: Path) -> None:
    """A sanity check of the harness: a valid preset passes every check up to the deploy step."""
    code, _out, err = run_cli(["deploy", "monolith", "--env", "A=1", "--ready-timeout", "5"])
    assert code is None, err


# ---- what the fuzzing found, pinned --------------------------------------------------------------


def test_cli_prints_undecodable_arguments_escaped(world: Path) -> None:
    """A lone surrogate (an undecodable byte of an argument) in a message: printed escaped, not a
    UnicodeEncodeError traceback from a strict UTF-8 stream."""
    code, _out, err = run_cli(["presets", "list", "--dir", "\udcff"])
    assert code == 1
    assert "bannou-env: \\udcff: preset directory does not exist" in err


@pytest.mark.parametrize(
    "text",
    [
        "name: fz\nenvironment: " + "[" * 500 + "]" * 500 + "\n",
        "name: fz\nenvironment: " + "{a: " * 400 + "1" + "}" * 400 + "\n",
        "name: fz\n" + "".join("  " * i + f"k{i}:\n" for i in range(150)) + "  " * 150 + "v\n",
    ],
    ids=["flow-lists", "flow-maps", "block-maps"],
)
def test_deeply_nested_preset_is_one_problem(world: Path, text: str) -> None:
    path = write_preset(world, text.encode())
    with pytest.raises(PresetError, match="nested more than 100 levels deep"):
        load_file(path, environ={})
    code, out, err = run_cli(["presets", "validate", str(path)])
    assert code == 1 and "nested more than 100 levels deep" in out, err


@pytest.mark.parametrize("attrs", ['tests="nan"', 'failures="1e999"', 'errors="-inf"', 'skipped="inf"'])
def test_junit_counts_that_are_not_numbers_are_ignored(attrs: str) -> None:
    run = get_parser("junit").parse(f'<testsuite {attrs}><testcase name="a" time="nan"/></testsuite>', 0)
    assert [(c.name, c.outcome, c.duration) for c in run.cases] == [("a", "passed", None)]
    json.loads(json.dumps(run.to_dict(), allow_nan=False))


def test_junit_parser_takes_text_with_lone_surrogates() -> None:
    run = get_parser("junit").parse('<testsuite><testcase name="a\udcff"/></testsuite>', 0)
    assert [c.outcome for c in run.cases] == ["passed"]


@pytest.mark.parametrize("name", ["log.txt/inside", "x" * 300], ids=["file-on-the-way", "name-too-long"])
@pytest.mark.parametrize("command", ["merge", "render"])
def test_report_input_that_cannot_be_read_is_one_message(world: Path, name: str, command: str) -> None:
    src = str(world / "files" / name)
    code, _out, err = run_cli(["report", command, src, "-o", str(world / "out" / "r")])
    assert code == 1 and f"bannou-env: {src}: cannot read: " in err, err


@pytest.mark.parametrize(
    "name", ["log.txt/x", "y" * 300, "missing/dir/x"], ids=["file-on-the-way", "too-long", "no-dir"]
)
def test_render_into_an_unwritable_path_is_one_message(world: Path, name: str) -> None:
    out = str(world / "files" / name)
    code, _out, err = run_cli(["render", "monolith", "--backend", "kubernetes", "-o", out])
    assert code == 1 and f"bannou-env: cannot write the rendered file {out}: " in err, err


def _plant(info: dict[str, Any]) -> None:
    from pytest_bannou.environment.runs import RUN_INFO as RUN_INFO_FILE
    from pytest_bannou.environment.runs import run_directory, runs_root

    runs_root()
    workdir = run_directory(RUN_ID)
    workdir.mkdir(mode=0o700, exist_ok=True)
    (workdir / RUN_INFO_FILE).write_text(json.dumps(info))


@pytest.mark.parametrize(
    "urls",
    [True, {"main": None}, {"main": 7}, {"main": "http://[::1"}, {"main": "http://127.0.0.1:x"}],
    ids=["not-a-map", "null", "number", "bad-ipv6", "bad-port"],
)
def test_status_of_a_run_record_with_broken_urls(world: Path, urls: Any) -> None:
    _plant({"run_id": RUN_ID, "backend": "local", "kept": True, "urls": urls})
    code, out, err = run_cli(["status", "--run-id", RUN_ID])
    assert code == 0 and out.startswith(f"{RUN_ID}: "), err


def test_logs_of_a_run_record_whose_backend_is_not_a_name(world: Path) -> None:
    _plant({"run_id": RUN_ID, "backend": True, "kept": True})
    code, _out, err = run_cli(["logs", RUN_ID, "main", "--tail", "3"])
    assert code in (0, 1) and "Traceback" not in err, err


@pytest.mark.parametrize("started", [2**63, -62135596801, 1e300], ids=["past-time_t", "year-0", "1e300"])
def test_report_with_a_start_time_that_is_no_date(world: Path, started: float) -> None:
    src = world / "out" / "results-date.json"
    src.parent.mkdir(exist_ok=True)
    src.write_text(json.dumps({**RESULTS_SEED, "started_at": started}))
    code, _out, err = run_cli(["report", "render", str(src), "-o", str(world / "out" / "date")])
    assert code == 0, err
    assert "(not a date)" in (world / "out" / "date" / "report.html").read_text()
