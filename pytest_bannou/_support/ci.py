"""Which CI job a session runs in: one table for the run id's suffix and the report's job name.

Each row is one CI system: the variables that identify the job (joined with ``-`` they end the
run id, so leaked resources name their job; the first must be set for the row to apply) and the
variable holding the job's human name (the report's ``ci_job``). ``BANNOU_CI_JOB_ID``
(documented; set it per matrix entry, e.g. to the preset) comes first and names the job for
both; ``BANNOU_CI_JOB`` is accepted as its twin.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class CiJobSource:
    system: str
    id_vars: tuple[str, ...]
    name_var: str | None = None


CI_JOBS: tuple[CiJobSource, ...] = (
    CiJobSource("bannou", ("BANNOU_CI_JOB_ID",), "BANNOU_CI_JOB_ID"),
    CiJobSource("bannou", ("BANNOU_CI_JOB",), "BANNOU_CI_JOB"),
    CiJobSource("github", ("GITHUB_RUN_ID", "GITHUB_JOB", "BANNOU_CI_MATRIX"), "GITHUB_JOB"),
    CiJobSource("gitlab", ("CI_JOB_ID",), "CI_JOB_NAME"),
    CiJobSource("buildkite", ("BUILDKITE_JOB_ID",), "BUILDKITE_LABEL"),
    CiJobSource("jenkins", ("BUILD_ID",), "JOB_NAME"),
)


def _get(environ: Mapping[str, str], name: str | None) -> str:
    return environ.get(name, "").strip() if name else ""


def ci_job_id(environ: Mapping[str, str] | None = None) -> str | None:
    """The job's identifying values joined with ``-`` (raw: the run id sanitizes it), or None
    outside CI."""
    environ = os.environ if environ is None else environ
    for row in CI_JOBS:
        parts = [_get(environ, n) for n in row.id_vars]
        if parts[0]:
            return "-".join(p for p in parts if p)
    return None


def ci_job_name(environ: Mapping[str, str] | None = None) -> str | None:
    """The job's name for reports: the first name variable that is set, or None."""
    environ = os.environ if environ is None else environ
    for row in CI_JOBS:
        name = _get(environ, row.name_var)
        if name:
            return name
    return None
