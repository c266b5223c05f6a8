"""``${VAR}`` interpolation in preset values, and durations."""

from __future__ import annotations

import pytest

from pytest_bannou.errors import PresetError
from pytest_bannou.preset import load_file
from pytest_bannou.preset.durations import parse_duration
from pytest_bannou.preset.interpolate import InterpolationError, expand, interpolate_string

ENV = {"SET": "value", "EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("${SET}", "value"),
        ("a-${SET}-b", "a-value-b"),
        ("${UNSET:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${EMPTY-fallback}", ""),
        ("${UNSET-fallback}", "fallback"),
        ("${SET:-fallback}", "value"),
        ("${SET:?needed}", "value"),
        ("${UNSET:-}", ""),
        ("$$", "$"),
        ("cost $$5 and $${SET}", "cost $5 and ${SET}"),
        ("$HOME stays", "$HOME stays"),
        ("${UNSET:-a b:c}", "a b:c"),
    ],
)
def test_forms(text, expected):
    assert interpolate_string(text, ENV) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("${UNSET}", "environment variable UNSET is not set (used as `${UNSET}`)"),
        ("${UNSET:?set it to the region}", "environment variable UNSET is required: set it to the region"),
        ("${EMPTY:?must not be empty}", "EMPTY is required: must not be empty"),
        ("${UNSET?}", "UNSET is required: it is not set"),
        ("${1BAD}", "invalid variable reference `${1BAD}`"),
        ("${SET+x}", "after the name expected `:-`, `-`, `:?` or `?`"),
        ("${SET", "unterminated `${`"),
    ],
)
def test_errors_name_the_variable(text, fragment):
    with pytest.raises(InterpolationError) as info:
        interpolate_string(text, ENV)
    assert fragment in str(info.value)


def test_never_a_shell(tmp_path):
    marker = tmp_path / "ran"
    assert interpolate_string(f"${{UNSET:-$(touch {marker})}}", {}) == f"$(touch {marker})"
    assert not marker.exists()


def test_error_in_a_file_names_file_line_and_variable(write):
    path = write("x", "topology:\n  nodes:\n    - name: n\n      environment:\n        REGION: ${REGION}\n")
    with pytest.raises(PresetError) as info:
        load_file(path, environ={})
    assert str(info.value) == (
        f"{path}:5:17: environment variable REGION is not set (used as `${{REGION}}`); set it, "
        "or give a default with `${REGION:-default}`"
    )


def test_values_are_interpolated_everywhere_and_coerced(write):
    path = write(
        "x",
        """
        topology:
          nodes:
            - name: ${NODE:-n}
              replicas: ${COUNT:-1}
              command: [run, "${ARG}"]
          infrastructure:
            redis: {enabled: "${INFRA:-false}"}
            mysql:
              enabled: ${INFRA:-false}
        """,
    )
    p = load_file(path, environ={"COUNT": "3", "ARG": "x y", "INFRA": "true"})
    node = p.topology.nodes[0]
    assert (node.name, node.replicas, node.command) == ("n", 3, ["run", "x y"])
    assert p.topology.infrastructure["redis"].enabled is True
    assert p.topology.infrastructure["mysql"].enabled is True
    off = load_file(path, environ={"ARG": ""})
    assert off.topology.infrastructure["redis"].enabled is False
    assert off.hash != p.hash  # the hash covers the interpolated content


def test_keys_are_not_interpolated(write):
    p = load_file(write("x", "environment:\n  ${K}: v\n"), environ={})
    assert p.environment == {"${K}": "v"}


def test_expand_helper():
    assert expand("${A:-b}", {}) == "b"
    with pytest.raises(PresetError, match=r"f\.yaml: environment variable A is not set"):
        expand("${A}", {}, "f.yaml")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("500ms", 0.5),
        ("2s", 2),
        ("1m", 60),
        ("1h", 3600),
        ("1m30s", 90),
        (" 2 s ", 2),
        ("1.5", 1.5),
        (3, 3),
        (0.25, 0.25),
        ("0", 0),
        ("250MS", 0.25),
    ],
)
def test_durations(value, seconds):
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["soon", "5 parsecs", "-1", -2, True, None, "1m x", "ms", "nan", [1]])
def test_bad_durations(value):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)
