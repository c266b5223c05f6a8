"""A Kubernetes run kept by ``bannou-env deploy``: ``status`` checks its nodes and infrastructure
through port-forwards of its own (the ones ``deploy`` opened closed when it exited) and says they
are healthy; ``deploy`` says how to reach a node afterwards instead of printing URLs that die
with it; ``--backend-option`` options (a NodePort Service) are remembered by ``update``/``status``."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from pytest_bannou.backends.base import LABEL_RUN_ID
from pytest_bannou.backends.kubernetes.names import label_value
from tests.support import k8s as k8s_support
from tests.support.kept_cli import cli, urls

from .test_kubernetes import core_api

pytestmark = pytest.mark.timeout(600)

PRESET = """
name: kept-k8s
description: a node and Redis when BANNOU_INFRA=true
topology:
  nodes:
    - name: bannou-main
      appId: bannou
  infrastructure:
    redis:
      enabled: ${BANNOU_INFRA:-false}
      version: "7"
"""


@pytest.fixture
def kept_env(kubeconfig: str, k8s_images, tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("KUBECONFIG", kubeconfig)
    monkeypatch.setenv("BANNOU_INFRA", "true")
    monkeypatch.delenv("BANNOU_BACKEND_OPTION", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kept-k8s.yaml").write_text(PRESET)
    return tmp_path


@contextmanager
def kept_run(presets: Path, *options: str) -> Iterator[tuple[str, str]]:
    """``bannou-env deploy`` on kubernetes: (run id, its output); cleaned afterwards."""
    deploy = ["deploy", "kept-k8s", "--presets-dir", str(presets), "--backend", "kubernetes"]
    out = cli(*deploy, "--ready-timeout", "240", *options).stdout
    run_id = re.search(r"run id: (\S+)", out).group(1)
    k8s_support.RUN_IDS.add(run_id)
    try:
        yield run_id, out
    finally:
        cli("clean", "--run-id", run_id, "--backend", "kubernetes", check=False)


def kubectl_reaches(namespace: str) -> bool:
    """The printed ``kubectl port-forward`` works: the node answers /health through it."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: apt-get install kubectl (or use `cluster kubectl`)")
    proc = subprocess.Popen(
        ["kubectl", "-n", namespace, "port-forward", "svc/bannou-main", ":80"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # Forwarding from 127.0.0.1:PORT -> 80
        port = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert port, line
        return httpx.get(f"http://127.0.0.1:{port.group(1)}/health", timeout=10).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_status_of_a_kept_run_checks_through_its_own_port_forwards(kept_env: Path) -> None:
    with kept_run(kept_env) as (run_id, out):
        # the URLs deploy printed were its port-forwards: it says so, and how to reach a node
        assert "close when this command exits" in out, out
        namespace = re.search(r"kubectl -n (\S+) port-forward svc/bannou-main :80$", out, re.M)
        assert namespace, out
        assert kubectl_reaches(namespace.group(1))
        dead = urls(out)["bannou-main"]
        with pytest.raises(httpx.HTTPError):
            httpx.get(dead + "/health", timeout=5)
        status = cli("status", "--run-id", run_id).stdout
        assert re.search(r"^  bannou-main: http://127\.0\.0\.1:\d+ \(health 200\)$", status, re.M), status
        assert re.search(r"^    redis \(redis\) ok [\d.]+ ms PING ", status, re.M), status
        assert "FAILED" not in status and "unreachable" not in status, status


def test_backend_options_are_remembered_by_update_and_status(kept_env: Path, kubeconfig: str) -> None:
    with kept_run(kept_env, "--backend-option", "kubernetes_service_type=NodePort") as (run_id, out):
        first = urls(out)["bannou-main"]
        assert not first.startswith("http://127.0.0.1:"), out  # a NodePort: it lasts
        assert "port-forward" not in out, out
        assert httpx.get(first + "/health", timeout=10).status_code == 200
        updated = cli("update", run_id, "update-env:bannou-main:KEPT=yes").stdout
        assert "configuration version 2" in updated
        assert not urls(updated)["bannou-main"].startswith("http://127.0.0.1:"), updated
        namespace = next(
            ns.metadata.name
            for ns in core_api(kubeconfig)
            .list_namespace(label_selector=f"{LABEL_RUN_ID}={label_value(run_id)}")
            .items
        )
        svc = core_api(kubeconfig).read_namespaced_service("bannou-main", namespace)
        assert svc.spec.type == "NodePort"
        status = cli("status", "--run-id", run_id).stdout
        assert re.search(r"^  bannou-main: http://(?!127\.0\.0\.1)\S+ \(health 200\)$", status, re.M), status
