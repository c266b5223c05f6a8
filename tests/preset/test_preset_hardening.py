"""Hostile input to the preset layer (issue 12, points 7, 8 and 10): alias bombs, files that are
not files, names that cannot be file names, values no process can carry, nested interpolation and
preset directories that do not exist. Every case is one ``PresetError`` naming where, never a
traceback, a hang or a memory blow-up."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from pytest_bannou.cli import main
from pytest_bannou.errors import PresetError
from pytest_bannou.preset import PresetLibrary, load_file
from pytest_bannou.preset.interpolate import InterpolationError, interpolate_string
from pytest_bannou.preset.yamlpos import MAX_TEXT

# --- point 7: alias expansion, files that are not regular files, names too long -------------------


def _alias_bomb(path: Path, size: int, aliases: int) -> Path:
    refs = ", ".join(["*s"] * aliases)
    path.write_text(f'x: &s "{"x" * size}"\ntopology:\n  nodes:\n    - name: n\n      command: [{refs}]\n')
    return path


def test_aliases_expanding_past_the_text_bound_are_refused(tmp_path):
    path = _alias_bomb(tmp_path / "bomb.yaml", MAX_TEXT // 2 + 1, 3)  # under the node bound by far
    with pytest.raises(PresetError) as err:
        load_file(path, environ={})
    (problem,) = err.value.problems
    assert problem.location.file == str(path) and problem.location.line == 5
    assert "YAML aliases expand this document past" in problem.message


def test_two_thousand_aliases_to_a_four_megabyte_string(tmp_path):
    path = _alias_bomb(tmp_path / "bomb.yaml", 4_000_000, 2000)
    with pytest.raises(PresetError, match=r"bomb\.yaml:5:\d+: YAML aliases expand this document past"):
        load_file(path, environ={})


def test_a_file_over_the_size_bound_is_not_read(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("description: " + "x" * (MAX_TEXT + 10) + "\n")
    with pytest.raises(PresetError, match=r"big\.yaml: a preset file may hold at most"):
        load_file(path, environ={})


def _load_in_thread(path: Path, fifo: Path | None = None) -> BaseException | None:
    """load_file in a thread; if it blocks (a FIFO opened for reading), unblock it and fail."""
    out: list[BaseException | None] = []

    def run() -> None:
        try:
            load_file(path, environ={})
            out.append(None)
        except BaseException as exc:  # handed to the test
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    if thread.is_alive() and fifo is not None:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # the reader is there: this succeeds
        os.close(fd)
        thread.join(30)
        pytest.fail(f"load_file({path}) blocked on a FIFO")
    assert out, f"load_file({path}) did not return"
    return out[0]


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_preset_file_that_is_not_a_regular_file_is_refused_at_once(tmp_path, kind):
    path = tmp_path / "x.yaml"
    if kind == "fifo":
        os.mkfifo(path)
        what = "a FIFO"
    else:
        path.mkdir()
        what = "a directory"
    exc = _load_in_thread(path, path if kind == "fifo" else None)
    assert isinstance(exc, PresetError), exc
    assert str(exc) == f"{path}: not a regular file ({what}): a preset is a .yaml file"


def test_dev_zero_is_refused_without_reading_it():
    exc = _load_in_thread(Path("/dev/zero"))
    assert isinstance(exc, PresetError)
    assert str(exc) == "/dev/zero: not a regular file (a character device): a preset is a .yaml file"


def test_a_fifo_on_the_search_path_is_named(tmp_path):
    os.mkfifo(tmp_path / "piped.yaml")
    library = PresetLibrary([tmp_path], environ={}, include_builtin=False)
    with pytest.raises(PresetError, match=r"piped\.yaml: not a regular file \(a FIFO\)"):
        library.load("piped")


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("x" * 300, "is 300 characters long; a preset name is a file name of at most 250 characters"),
        ("a\x00b", "invalid preset name 'a\\x00b'"),
        ("abc\n", "invalid preset name 'abc\\n'"),
    ],
)
def test_names_that_cannot_be_file_names(tmp_path, name, fragment):
    library = PresetLibrary([tmp_path], environ={})
    with pytest.raises(PresetError) as err:
        library.load(name)
    assert fragment in str(err.value)


def test_a_long_name_from_the_cli_is_a_clear_error(capsys):
    assert main(["presets", "show", "x" * 300]) == 1
    err = capsys.readouterr().err
    assert "is 300 characters long" in err and "Traceback" not in err


def test_a_long_extends_target_points_at_the_extends_line(tmp_path, write):
    path = write("child", f"extends: {'p' * 300}\ntopology:\n  nodes: [{{name: n}}]\n", tmp_path)
    with pytest.raises(PresetError) as err:
        load_file(path, environ={})
    (problem,) = err.value.problems
    assert str(problem.location) == f"{path}:1:10"
    assert "invalid extends target" in problem.message and "300 characters long" in problem.message


# --- point 8: what fails later is found at load time ------------------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "where", "fragment"),
    [
        (
            'topology:\n  nodes:\n    - name: n\n      environment: {A: "x\\0y"}\n',
            "4:24",
            "`topology.nodes[n].environment.A` contains a NUL character",
        ),
        (
            'topology:\n  nodes:\n    - name: n\n      command: [run, "--x=\\0"]\n',
            "4:22",
            "`topology.nodes[n].command[1]` contains a NUL character",
        ),
        ('description: "a\\0"\n', "1:14", "`description` contains a NUL character"),
        (
            "topology:\n  nodes:\n    - name: n\n      environment: {A=B: x}\n",
            "4:21",
            "environment key 'A=B' contains `=`",
        ),
        (
            'environment: {"A\\0": x}\ntopology:\n  nodes: [{name: n}]\n',
            "1:15",
            "environment key 'A\\x00' contains a NUL character",
        ),
        ('environment: {"": x}\n', "1:15", "environment key '' is empty"),
        (
            "topology:\n  nodes:\n    - name: n\n      ports: [80, 81, 80]\n",
            "4:23",
            "port 80 is listed twice on node `n`",
        ),
        (
            "topology:\n  nodes:\n    - name: n\n      ports: [true]\n",
            "4:15",
            "`topology.nodes[n].ports[0]`: a port is a number from 1 to 65535, got true",
        ),
        (
            "topology:\n  nodes:\n    - name: n\n      ports: yes\n",
            "4:14",
            "`topology.nodes[n].ports`: a port is a number from 1 to 65535, got true",
        ),
        (
            "topology:\n  nodes:\n    - name: n\n      ports: [80]\n      healthcheck: {tcp: on}\n",
            "5:26",
            "`topology.nodes[n].healthcheck.tcp`: a port is a number from 1 to 65535, got true",
        ),
        (
            "topology:\n  nodes:\n    - name: n\n      ports: [8080]\n      healthcheck: {tcp: 9090}\n",
            "5:26",
            "healthcheck `tcp: 9090` probes a port node `n` does not list (ports: 8080)",
        ),
        (
            "topology:\n  nodes:\n    - name: n\n      healthcheck: {tcp: 5000}\n",
            "4:26",
            "healthcheck `tcp: 5000` probes a port node `n` does not list (ports: 80)",
        ),
        (
            "topology:\n  nodes: [{name: n}]\n  infrastructure:\n    redis: {healthcheck: {tcp: 1}}\n",
            "4:32",
            "healthcheck `tcp: 1` probes a port infrastructure `redis` does not list (ports: 6379)",
        ),
        (
            "topology:\n  nodes:\n    - name: n\n      dependsOn: [n]\n",
            "4:19",
            "node `n` depends on itself",
        ),
    ],
)
def test_what_fails_later_is_found_at_load_time(write, problems, yaml_text, where, fragment):
    path = write("x", yaml_text)
    out = problems(path)
    assert any(line.startswith(f"{path}:{where}: ") and fragment in line for line in out), out


def test_valid_ports_and_probes_still_load(write):
    path = write(
        "ok",
        """
        topology:
          nodes:
            - name: n
              ports: ["8080", 9090]
              healthcheck: {tcp: 9090}
            - name: m
              healthcheck: {tcp: 80}
              dependsOn: [n, redis]
          infrastructure:
            redis: {healthcheck: {tcp: 6379}}
        """,
    )
    preset = load_file(path, environ={})
    assert preset.topology.nodes[0].ports == [8080, 9090]


# --- point 10: nested interpolation, preset directories that do not exist ---------------------------


def test_nested_interpolation_says_nesting_is_not_supported():
    with pytest.raises(InterpolationError, match=r"nested `\$\{\.\.\.\}` .* is not supported"):
        interpolate_string("${A:-${B}}", {"B": "b"})
    with pytest.raises(InterpolationError, match="unterminated"):
        interpolate_string("${A:-x", {})


def test_a_presets_dir_that_does_not_exist_is_an_error(tmp_path):
    missing = tmp_path / "nonexistent"
    with pytest.raises(PresetError) as err:
        PresetLibrary([missing])
    assert str(err.value) == (
        f"{missing}: preset directory does not exist; create it or fix the path "
        "(--bannou-presets-dir, BANNOU_PRESETS_DIR, bannou_presets_dir or bannou-env --presets-dir)"
    )
    afile = tmp_path / "file.yaml"
    afile.write_text("x: 1\n")
    with pytest.raises(PresetError, match=r"file\.yaml: preset directory is not a directory"):
        PresetLibrary([afile])


def test_the_cli_says_a_presets_dir_does_not_exist(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BANNOU_PRESETS_DIR", raising=False)
    assert main(["presets", "list", "--dir", str(tmp_path / "nonexistent")]) == 1
    assert "preset directory does not exist" in capsys.readouterr().err
    monkeypatch.setenv("BANNOU_PRESETS_DIR", str(tmp_path / "gone"))
    assert main(["presets", "show", "monolith"]) == 1
    assert f"{tmp_path / 'gone'}: preset directory does not exist" in capsys.readouterr().err


def test_the_plugin_says_a_presets_dir_does_not_exist(pytester: pytest.Pytester, tmp_path, monkeypatch):
    monkeypatch.delenv("BANNOU_PRESETS_DIR", raising=False)
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("--bannou-presets-dir", str(tmp_path / "nonexistent"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert f"bannou_presets_dir (--bannou-presets-dir): {tmp_path / 'nonexistent'}: preset directory" in err
    assert "Traceback" not in err + result.stdout.str()
