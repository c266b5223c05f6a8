"""Run external tester suites (http-tester, edge-tester, any command) and parse their output
into per-test results (``TesterRun``)."""

from __future__ import annotations

from .base import TesterParser
from .model import CaseResult, Outcome, TesterRun
from .registry import get_parser, known_formats
from .runner import run_tester, tester_environment

__all__ = [
    "CaseResult",
    "Outcome",
    "TesterParser",
    "TesterRun",
    "get_parser",
    "known_formats",
    "run_tester",
    "tester_environment",
]
