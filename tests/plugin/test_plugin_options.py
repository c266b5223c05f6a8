"""Options: every one has an ini key and an env-var twin; precedence CLI > env > ini > default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_bannou.messaging.session import settings_from
from pytest_bannou.plugin import options as opts

HEADER_TEST = """
def test_nothing():
    pass
"""


def _resolve(cli=None, ini=None, env=None) -> opts.Settings:
    cli, ini = cli or {}, ini or {}
    return opts.resolve(lambda dest: cli.get(dest), lambda key: ini.get(key, ""), env or {})


def test_every_option_has_ini_key_and_env_twin():
    for opt in opts.OPTIONS:
        assert opt.ini.startswith("bannou_")
        assert opt.env == opt.ini.upper()


def test_defaults():
    s = _resolve()
    assert s.presets == ()
    assert s.backend == "local"
    assert s.plan is None
    assert s.keep is False
    assert s.ready_timeout == 120.0
    assert s.batch is True
    assert s.transition == "diff"
    assert s.default_preset == "monolith"
    assert s.local_command is None


def test_precedence_cli_over_env_over_ini():
    ini = {"bannou_backend": "compose", "bannou_ready_timeout": "30", "bannou_preset": ["a"]}
    env = {"BANNOU_BACKEND": "swarm", "BANNOU_READY_TIMEOUT": "20", "BANNOU_PRESET": "b,c"}
    cli = {"bannou_backend": "kubernetes", "bannou_ready_timeout": "10", "bannou_preset": ["d", "e"]}
    assert _resolve(ini=ini).backend == "compose"
    assert _resolve(ini=ini).presets == ("a",)
    assert _resolve(ini=ini, env=env).backend == "swarm"
    assert _resolve(ini=ini, env=env).ready_timeout == 20.0
    assert _resolve(ini=ini, env=env).presets == ("b", "c")
    s = _resolve(cli=cli, ini=ini, env=env)
    assert (s.backend, s.ready_timeout, s.presets) == ("kubernetes", 10.0, ("d", "e"))
    assert s.sources["bannou_backend"] == "cli"


def test_bool_and_choice_options_from_env_and_ini():
    s = _resolve(env={"BANNOU_KEEP": "yes", "BANNOU_NO_BATCH": "1", "BANNOU_TRANSITION": "full"})
    assert (s.keep, s.batch, s.transition) == (True, False, "full")
    s = _resolve(ini={"bannou_keep": True, "bannou_plan": "json"})
    assert (s.keep, s.plan) == (True, "json")
    assert _resolve(env={"BANNOU_PLAN": "1"}).plan == "text"


def test_presets_dir_env_is_pathsep_separated(tmp_path):
    import os

    a, b = tmp_path / "a", tmp_path / "b"
    s = _resolve(env={"BANNOU_PRESETS_DIR": f"{a}{os.pathsep}{b}"})
    assert s.presets_dirs == (a, b)
    s = _resolve(cli={"bannou_presets_dir": [str(b)]}, env={"BANNOU_PRESETS_DIR": str(a)})
    assert s.presets_dirs == (b,)


def test_local_command_is_split_like_a_shell():
    s = _resolve(ini={"bannou_local_command": "dotnet 'my dir/bannou-service.dll' --x"})
    assert s.local_command == ("dotnet", "my dir/bannou-service.dll", "--x")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"BANNOU_READY_TIMEOUT": "soon"},
            "environment variable BANNOU_READY_TIMEOUT: 'soon' is not a number",
        ),
        ({"BANNOU_READY_TIMEOUT": "-1"}, "must be more than 0"),
        ({"BANNOU_KEEP": "maybe"}, "is not a boolean"),
        ({"BANNOU_TRANSITION": "half"}, "is not one of diff, full"),
    ],
)
def test_bad_values_name_the_source(env, message):
    with pytest.raises(opts.OptionError, match=message.replace("(", r"\(")):
        _resolve(env=env)


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e999", "0", "-0.5"])
@pytest.mark.parametrize("dest", ["bannou_ready_timeout", "bannou_heartbeat_interval"])
def test_durations_must_be_finite_and_positive(dest, value):
    flag = "--" + dest.replace("_", "-")
    with pytest.raises(opts.OptionError, match=f"{flag}: '{value}' must be more than 0 seconds and finite"):
        _resolve(cli={dest: value})


def test_durations_are_written_as_in_preset_files():
    assert _resolve(cli={"bannou_ready_timeout": "90s"}).ready_timeout == 90.0
    assert _resolve(env={"BANNOU_READY_TIMEOUT": "1m30s"}).ready_timeout == 90.0
    assert _resolve(ini={"bannou_heartbeat_interval": "500ms"}).sources["bannou_heartbeat_interval"] == "ini"


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("grace_period=abc", "--bannou-backend-option grace_period='abc': expected seconds >= 0"),
        ("grace_period=nan", "--bannou-backend-option grace_period='nan': expected seconds >= 0"),
        ("grace_period=-1", "--bannou-backend-option grace_period='-1': expected seconds >= 0"),
        ("grace_period=", "--bannou-backend-option grace_period='': expected seconds >= 0"),
        ("stop_grace=later", "--bannou-backend-option stop_grace='later': expected seconds >= 0"),
        ("kubernetes_teardown_timeout=0", "kubernetes_teardown_timeout='0': expected seconds > 0"),
        ("kubernetes_termination_grace=inf", "kubernetes_termination_grace='inf': expected seconds >= 0"),
    ],
)
def test_duration_backend_options_are_checked(pair, message):
    with pytest.raises(opts.OptionError, match=re.escape(message)):
        _resolve(cli={"bannou_backend_option": [pair]})


def test_duration_backend_options_reach_the_backend_as_seconds():
    s = _resolve(
        cli={
            "bannou_backend_option": ["grace_period=2", "stop_grace=1m", "kubernetes_teardown_timeout=500ms"]
        }
    )
    assert s.backend_options == {
        "grace_period": "2",
        "stop_grace": "60.0",
        "kubernetes_teardown_timeout": "0.5",
    }
    with pytest.raises(opts.OptionError, match="environment variable BANNOU_BACKEND_OPTION grace_period='x'"):
        _resolve(env={"BANNOU_BACKEND_OPTION": "grace_period=x"})


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--bannou-ready-timeout=nan"], "ERROR: --bannou-ready-timeout: 'nan' must be more than 0 seconds*"),
        (
            ["--bannou-backend-option", "grace_period=abc"],
            "ERROR: --bannou-backend-option grace_period='abc': expected seconds >= 0*",
        ),
    ],
)
def test_bad_durations_are_one_usage_error_line(bannou_pytester, args, line):
    bannou_pytester.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.preset("alpha")
        def test_1(bannou_env):
            pass
        """
    )
    result = bannou_pytester.run_subprocess(*args, timeout=120)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([line])
    assert len([ln for ln in result.stderr.lines if ln.strip()]) == 1, result.stderr.lines
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_header_names_backend_and_presets_from_cli_env_and_ini(bannou_pytester, monkeypatch):
    bannou_pytester.pytester.makepyfile(HEADER_TEST)
    bannou_pytester.pytester.makeini("[pytest]\nbannou_preset = alpha\nbannou_backend = local\n")
    result = bannou_pytester.run()
    result.stdout.fnmatch_lines(["bannou: backend local, presets alpha, run id bannou-*"])
    monkeypatch.setenv("BANNOU_PRESET", "beta,gamma")
    result = bannou_pytester.run()
    result.stdout.fnmatch_lines(["bannou: backend local, presets beta, gamma, run id bannou-*"])
    result = bannou_pytester.run("--bannou-preset=gamma")
    result.stdout.fnmatch_lines(["bannou: backend local, presets gamma, run id bannou-*"])
    assert result.ret == 0


def test_default_header_without_presets(bannou_pytester):
    bannou_pytester.pytester.makepyfile(HEADER_TEST)
    result = bannou_pytester.run()
    result.stdout.fnmatch_lines(
        ["bannou: backend local, presets as marked (unmarked: monolith), run id bannou-*"]
    )


def test_bad_option_value_is_a_usage_error_without_traceback(bannou_pytester):
    bannou_pytester.pytester.makepyfile(HEADER_TEST)
    result = bannou_pytester.run("--bannou-ready-timeout=abc")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --bannou-ready-timeout: 'abc' is not a number of seconds*"])
    assert "Traceback" not in result.stderr.str()


def test_unknown_backend_is_one_clear_message(bannou_pytester):
    bannou_pytester.pytester.makepyfile(
        """
        def test_uses_env(bannou_env):
            pass
        """
    )
    result = bannou_pytester.run("--bannou-backend=nope", "--bannou-preset=alpha")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: unknown backend 'nope'; known backends: local*"])
    assert "Traceback" not in result.stderr.str()


def test_unavailable_backend_does_not_matter_for_tests_without_environment(bannou_pytester):
    bannou_pytester.pytester.makepyfile(HEADER_TEST)
    result = bannou_pytester.run("--bannou-backend=nope")
    assert result.ret == 0


def test_ini_presets_dir_is_relative_to_the_ini_file(bannou_pytester):
    other = bannou_pytester.pytester.mkdir("more")
    (other / "delta.yaml").write_text(
        (Path(bannou_pytester.presets) / "alpha.yaml").read_text().replace("name: alpha", "name: delta")
    )
    bannou_pytester.pytester.makeini("[pytest]\nbannou_presets_dir = more\n")
    bannou_pytester.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.preset("delta")
        def test_delta(bannou_preset):
            assert bannou_preset == "delta"
        """
    )
    result = bannou_pytester.pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_help_lists_every_option(bannou_pytester):
    result = bannou_pytester.pytester.runpytest("--help")
    for opt in opts.OPTIONS:
        if opt.flag:
            assert opt.flag in result.stdout.str()
        result.stdout.fnmatch_lines([f"*{opt.ini}*"])


def test_unknown_cli_preset_is_a_usage_error(bannou_pytester):
    bannou_pytester.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.preset("alpha")
        def test_a():
            pass
        """
    )
    result = bannou_pytester.run("--bannou-preset=alhpa")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --bannou-preset alhpa: unknown preset 'alhpa'; known presets: alpha, *"]
    )


def test_backend_options_are_key_value_pairs_from_cli_env_or_ini():
    s = _resolve(cli={"bannou_backend_option": ["kubeconfig=/k/config", "kubernetes_service_type=NodePort"]})
    assert s.backend_options == {"kubeconfig": "/k/config", "kubernetes_service_type": "NodePort"}
    assert _resolve(env={"BANNOU_BACKEND_OPTION": "url=https://p:9443,endpoint=local"}).backend_options == {
        "url": "https://p:9443",
        "endpoint": "local",
    }
    assert _resolve(ini={"bannou_backend_option": ["grace_period=1"]}).backend_options == {
        "grace_period": "1"
    }
    with pytest.raises(opts.OptionError, match="'novalue' is not KEY=VALUE"):
        _resolve(cli={"bannou_backend_option": ["novalue"]})


def test_backend_options_reach_the_backend(bannou_pytester):
    bannou_pytester.pytester.makeconftest(
        """
        def pytest_bannou_configure_backend(config, options):
            print("EXTRA", sorted(options.extra.items()))
        """
    )
    bannou_pytester.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.preset("alpha")
        def test_1(bannou_env):
            pass
        """
    )
    result = bannou_pytester.run(
        "-s", "--bannou-backend-option", "grace_period=1", "--bannou-backend-option", "x=y"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["EXTRA [[]('grace_period', '1'), ('x', 'y')[]]"])


GC_PROBE = """
import gc
import weakref


class Cycle:
    pass


def test_report_freeze_count():
    print(f"frozen={gc.get_freeze_count()}")


def test_objects_created_during_the_session_are_still_collected():
    late = Cycle()
    late.self = late
    ref = weakref.ref(late)
    del late
    gc.collect()
    assert ref() is None
"""


@pytest.mark.parametrize("disable", [(), ("--bannou-no-gc-freeze",)], ids=["default", "no-gc-freeze"])
def test_gc_freeze_at_session_start_unless_disabled(bannou_pytester, disable):
    """In a subprocess: the freeze is once per process, and this process may have frozen already."""
    bannou_pytester.pytester.makepyfile(test_gc=GC_PROBE)
    result = bannou_pytester.run_subprocess("-s", "-q", *disable)
    result.assert_outcomes(passed=2)
    frozen = int(next(line for line in result.outlines if "frozen=" in line).split("frozen=")[1].split()[0])
    if disable:
        assert frozen == 0
    else:
        assert frozen > 10_000  # pytest, the plugins and the libraries they imported


# --- the heartbeat TTL and the restart threshold (issue 15 point 5) ------------------------------


def test_heartbeat_ttl_and_restart_threshold_are_options_with_ini_and_env_twins(bannou_pytester):
    result = bannou_pytester.pytester.runpytest("--help")
    text = " ".join(result.stdout.str().split())
    for flag, ini, env in (
        ("--bannou-heartbeat-ttl=SECONDS", "bannou_heartbeat_ttl", "BANNOU_HEARTBEAT_TTL"),
        ("--bannou-degraded-threshold=SECONDS", "bannou_degraded_threshold", "BANNOU_DEGRADED_THRESHOLD"),
    ):
        assert flag in text and f"[ini {ini}, env {env}]" in text
    assert "default 90, bannou's" in text and "default 300, bannou's" in text
    values = opts.option_values(
        ("bannou_heartbeat_ttl", "bannou_degraded_threshold"),
        lambda dest: {"bannou_heartbeat_ttl": "30"}.get(dest),
        lambda key: {"bannou_heartbeat_ttl": "40", "bannou_degraded_threshold": "2m"}.get(key, ""),
        {"BANNOU_HEARTBEAT_TTL": "35", "BANNOU_DEGRADED_THRESHOLD": "45"},
    )
    assert values == {"bannou_heartbeat_ttl": 30.0, "bannou_degraded_threshold": 45.0}  # CLI > env > ini
    settings = settings_from(values)
    assert (settings.ttl, settings.degraded_threshold) == (30.0, 45.0)
    assert (settings_from({}).ttl, settings_from({}).degraded_threshold) == (90.0, 300.0)


@pytest.mark.parametrize(
    ("how", "value", "line"),
    [
        ("cli", "soon", "ERROR: --bannou-heartbeat-ttl: 'soon' is not a number of seconds; e.g. *"),
        ("cli", "-5", "ERROR: --bannou-heartbeat-ttl: '-5' must be more than 0 seconds and finite; *"),
        ("env", "0", "ERROR: environment variable BANNOU_HEARTBEAT_TTL: '0' must be more than 0 seconds*"),
        ("ini", "later", "ERROR: ini key bannou_heartbeat_ttl: 'later' is not a number of seconds*"),
        ("cli-threshold", "-1", "ERROR: --bannou-degraded-threshold: '-1' must be more than 0 seconds*"),
        ("env-threshold", "x", "ERROR: environment variable BANNOU_DEGRADED_THRESHOLD: 'x' is not a number*"),
        ("ini-threshold", "nan", "ERROR: ini key bannou_degraded_threshold: 'nan' must be more than 0*"),
    ],
)
def test_a_bad_heartbeat_ttl_or_restart_threshold_is_one_usage_error(
    bannou_pytester, monkeypatch, how, value, line
):
    bannou_pytester.pytester.makepyfile(HEADER_TEST)
    name = "degraded_threshold" if how.endswith("-threshold") else "heartbeat_ttl"
    args = []
    if how.startswith("cli"):
        args = [f"--bannou-{name.replace('_', '-')}={value}"]
    elif how.startswith("env"):
        monkeypatch.setenv(f"BANNOU_{name.upper()}", value)
    else:
        bannou_pytester.pytester.makeini(f"[pytest]\nbannou_{name} = {value}\n")
    result = bannou_pytester.run_subprocess(*args, timeout=120)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([line])
    assert len([ln for ln in result.stderr.lines if ln.strip()]) == 1, result.stderr.lines
    assert "Traceback" not in result.stderr.str() and "INTERNALERROR" not in result.stdout.str()
