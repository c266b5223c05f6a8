"""Run ids of the docker tests and their shared conformance base. The session fixture in
tests/docker/conftest.py checks each run id for leftovers."""

from __future__ import annotations

import uuid
from pathlib import Path

from pytest_bannou.backends.base import Backend, BackendOptions
from pytest_bannou.backends.docker import engine as _docker
from tests.support.conformance import BackendConformance

RUN_IDS: set[str] = set()


def new_run_id(prefix: str = "dkt") -> str:
    rid = f"{prefix}-{uuid.uuid4().hex[:10]}"
    RUN_IDS.add(rid)
    return rid


class DockerConformance(BackendConformance):
    """The conformance cases on the Docker Engine: run ids checked for leftovers after the
    session, and nothing labelled or listed left after a teardown."""

    run_id_prefix = "conf"

    def make_options(self, workdir: Path, run_id: str) -> BackendOptions:
        return super().make_options(workdir, new_run_id(self.run_id_prefix))

    def assert_gone(self, backend: Backend, ids: list[str]) -> None:
        cli = _docker.client()
        try:
            assert _docker.labelled_leftovers(cli, backend.run_id) == []
            names = {c.id[:12] for c in cli.containers.list(all=True)}
            assert not set(ids) & names
        finally:
            cli.close()
