"""Shared by the tester-layer tests (a uniquely named module: every test directory has a
conftest.py, so ``from conftest import ...`` would be ambiguous)."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).parent / "data"


def read(name: str) -> str:
    return (DATA / name).read_bytes().decode("utf-8")
