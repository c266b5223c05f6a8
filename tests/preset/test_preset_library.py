"""The search path, name validation, ``extends`` and the content hash."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_bannou.errors import PresetError, UnknownPresetError
from pytest_bannou.preset import PresetLibrary, builtin_presets_dir, dirs_from_env, load_file

NODE = "topology:\n  nodes:\n    - name: {node}\n"


def test_first_directory_wins(tmp_path, write):
    a, b = tmp_path / "a", tmp_path / "b"
    write("same", "description: from a\n" + NODE.format(node="x"), a)
    write("same", "description: from b\n" + NODE.format(node="x"), b)
    write("only-b", NODE.format(node="x"), b)
    lib = PresetLibrary([a, b], environ={}, include_builtin=False)
    assert lib.names() == ["only-b", "same"]
    assert lib.path("same") == (a / "same.yaml").resolve()
    assert lib.load("same").description == "from a"
    assert lib.directories == [a.resolve(), b.resolve()]


def test_user_directory_shadows_builtin(tmp_path, write):
    write("monolith", "description: mine\n" + NODE.format(node="x"), tmp_path)
    lib = PresetLibrary([tmp_path], environ={})
    assert lib.load("monolith").description == "mine"
    assert "test-edge" in lib.names()
    assert lib.directories[-1] == builtin_presets_dir().resolve()


def test_yml_suffix_and_cache(tmp_path):
    (tmp_path / "short.yml").write_text(NODE.format(node="x"))
    lib = PresetLibrary([tmp_path], environ={}, include_builtin=False)
    assert lib.load("short") is lib.load("short")


def test_unknown_preset_lists_known_ones(tmp_path, write):
    write("alpha", NODE.format(node="x"), tmp_path)
    lib = PresetLibrary([tmp_path], environ={}, include_builtin=False)
    with pytest.raises(UnknownPresetError) as info:
        lib.path("alpah")
    assert "unknown preset 'alpah'; known presets: alpha" in str(info.value)
    assert str(tmp_path.resolve()) in str(info.value)


@pytest.mark.parametrize("name", ["../x", "a/b", "/etc/passwd", "..", ".hidden", "a\\b", "", "x y"])
def test_names_that_are_paths_are_rejected(name):
    with pytest.raises(PresetError) as info:
        PresetLibrary(environ={}).path(name)
    assert not isinstance(info.value, UnknownPresetError)
    assert "preset name" in str(info.value)


def test_file_name_and_declared_name_must_agree(tmp_path, write):
    path = write("one", "name: two\n" + NODE.format(node="x"), tmp_path)
    with pytest.raises(PresetError) as info:
        PresetLibrary([tmp_path], environ={}, include_builtin=False).load("one")
    assert str(info.value).startswith(
        f"{path}:1:7: preset name 'two' does not match its file name 'one.yaml'"
    )


def test_dirs_from_env():
    assert dirs_from_env(None) == [] and dirs_from_env("") == []
    assert dirs_from_env(os.pathsep.join(["a", "", "b"])) == [Path("a"), Path("b")]


def test_builtin_dir_is_the_source_tree_presets_folder():
    d = builtin_presets_dir()
    assert (d / "monolith.yaml").is_file()


def test_extends_merges_nodes_by_name(tmp_path, write):
    write(
        "base",
        """
        description: base preset
        category: testing
        topology:
          nodes:
            - name: main
              services: [auth]
              replicas: 1
              environment: {A: base, B: base}
            - name: other
        environment: {LEVEL: Info, KEEP: yes}
        testers:
          - {name: t, command: [a]}
        """,
        tmp_path,
    )
    child = write(
        "child",
        """
        extends: base
        description: child preset
        topology:
          nodes:
            - name: main
              replicas: 3
              environment: {B: child}
            - name: extra
        environment: {LEVEL: Debug}
        testers:
          - {name: t, format: junit}
        """,
        tmp_path,
    )
    lib = PresetLibrary([tmp_path], environ={}, include_builtin=False)
    p = lib.load("child")
    assert (p.name, p.description, p.category, p.extends) == ("child", "child preset", "testing", "base")
    nodes = {n.name: n for n in p.topology.nodes}
    assert list(nodes) == ["main", "other", "extra"]
    assert nodes["main"].replicas == 3 and nodes["main"].services == ["auth"]
    assert nodes["main"].environment == {"A": "base", "B": "child"}
    assert p.environment == {"LEVEL": "Debug", "KEEP": "true"}
    assert (p.testers[0].command, p.testers[0].format) == (["a"], "junit")
    # load_file finds the parent next to the file without an explicit library
    assert load_file(child, environ={}).raw == p.raw


def test_extends_errors_in_child_point_at_child(tmp_path, write):
    write("base", NODE.format(node="main"), tmp_path)
    child = write(
        "child", "extends: base\ntopology:\n  nodes:\n    - name: main\n      replicas: -1\n", tmp_path
    )
    with pytest.raises(PresetError) as info:
        PresetLibrary([tmp_path], environ={}, include_builtin=False).load("child")
    assert [str(p) for p in info.value.problems] == [
        f"{child}:5:17: `topology.nodes[main].replicas` should be greater than or equal to 0, got -1"
    ]


def test_extends_cycle(tmp_path, write):
    write("a", "extends: b\n", tmp_path)
    b = write("b", "extends: c\n", tmp_path)
    write("c", "extends: b\n", tmp_path)
    with pytest.raises(PresetError) as info:
        PresetLibrary([tmp_path], environ={}, include_builtin=False).load("a")
    assert (
        str(info.value)
        == f"{tmp_path / 'c.yaml'}:1:10: extends cycle: b -> c -> b; a preset cannot extend itself"
    )
    assert b.exists()


def test_extends_itself(tmp_path, write):
    path = write("self", "extends: self\n", tmp_path)
    with pytest.raises(PresetError, match="extends cycle: self -> self"):
        load_file(path, environ={})


def test_unknown_extends_target(tmp_path, write):
    path = write("child", "extends: nowhere\n", tmp_path)
    with pytest.raises(PresetError) as info:
        PresetLibrary([tmp_path], environ={}, include_builtin=False).load("child")
    assert str(info.value) == f"{path}:1:10: unknown extends target 'nowhere'; known presets: child"


def test_invalid_parent_reports_parent_problems(tmp_path, write):
    base = write("base", "topology:\n  nodes:\n    - name: main\n      replicas: lots\n", tmp_path)
    child = write("child", "extends: base\nbogus: 1\n", tmp_path)
    with pytest.raises(PresetError) as info:
        load_file(child, environ={})
    files = {p.location.file for p in info.value.problems}
    assert files == {str(base.resolve()), str(child)}


def test_extends_builtin_preset(tmp_path, write):
    path = write("mine", "extends: monolith\nenvironment: {EXTRA: '1'}\n", tmp_path)
    p = load_file(path, environ={})
    assert p.topology.nodes[0].name == "bannou" and p.environment["EXTRA"] == "1"


HASH_A = """
# a comment
name: h
topology:
  nodes:
    - name: n
      replicas: 2
      environment: {A: "1", B: "2"}
environment: {X: y}
"""
HASH_B = """
environment:
  X: y   # another comment
topology:
  nodes:
    - environment: {B: "2", A: "1"}
      replicas: 2
      name: n
name: h
"""


def test_hash_ignores_comments_key_order_and_spelling(write, tmp_path):
    a = load_file(write("a", HASH_A), environ={})
    b = load_file(write("b", HASH_B), environ={})
    c = load_file(
        write("c", HASH_A.replace("replicas: 2", "replicas: 2\n      mesh_enabled: true")), environ={}
    )
    d = load_file(
        write(
            "d",
            HASH_A.replace("meshEnabled", "x").replace("replicas: 2", "replicas: 2\n      meshEnabled: true"),
        ),
        environ={},
    )
    assert a.hash == b.hash
    assert c.hash == d.hash
    changed = load_file(write("e", HASH_A.replace("replicas: 2", "replicas: 3")), environ={})
    assert changed.hash != a.hash
    env_changed = load_file(write("f", HASH_A.replace('B: "2"', 'B: "3"')), environ={})
    assert env_changed.hash != a.hash


def test_builtin_dir_in_an_installed_layout(tmp_path):
    """In a wheel, presets/ is force-included as pytest_bannou/_builtin_presets (pyproject.toml)."""
    import shutil
    import subprocess
    import sys

    import pytest_bannou

    site = tmp_path / "site"
    shutil.copytree(
        Path(pytest_bannou.__file__).parent,
        site / "pytest_bannou",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copytree(builtin_presets_dir(), site / "pytest_bannou" / "_builtin_presets")
    code = (
        "from pytest_bannou.preset import PresetLibrary, builtin_presets_dir;"
        "print(builtin_presets_dir()); print(','.join(PresetLibrary(environ={}).names()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    assert out[0] == str(site / "pytest_bannou" / "_builtin_presets")
    assert "monolith" in out[1].split(",")
