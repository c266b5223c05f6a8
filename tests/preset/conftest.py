"""Helpers for the preset tests: write preset files and assert on their problems."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_bannou.errors import PresetError
from pytest_bannou.preset import load_file


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """write("name", yaml_text, directory=None) -> path of the written .yaml file."""

    def _write(name: str, text: str, directory: Path | None = None) -> Path:
        d = directory or tmp_path
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{name}.yaml"
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return _write


def _problems_of(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(PresetError) as info:
        load_file(path, environ=environ or {})
    return [str(p) for p in info.value.problems]


@pytest.fixture
def problems() -> Callable[..., list[str]]:
    """problems(path, environ=None): every problem of a file as ``FILE:LINE:COL: message``
    lines; fails the test if the file is valid."""
    return _problems_of
