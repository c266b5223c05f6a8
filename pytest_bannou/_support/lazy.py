"""Lazy re-exports for packages that replaced a module (PEP 562): ``from package import Name``
keeps working, and importing one submodule never imports its siblings, so a package
``__init__`` cannot close an import circle."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], list[str]]:
    """``(__getattr__, __all__)`` for ``package``: ``exports`` maps a public name to the submodule
    (relative to ``package``) that defines it; the submodule is imported on first access."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__, sorted(exports)
