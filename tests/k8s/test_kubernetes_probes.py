"""Probes on a real cluster: a node's start period no longer delays its readiness (a
checked from the start, no ``initialDelaySeconds``), and the ingress of a rendered file applied by hand
on this cluster, which has no cluster DNS, is not Ready while it cannot reach the node behind it
(it used to be Ready, answering 502 to every proxied request)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from pytest_bannou.backends.base import LABEL_NODE, BackendOptions
from pytest_bannou.backends.kubernetes import KubernetesBackend
from pytest_bannou.preset import PresetLibrary
from tests.support.k8s import FAST_HTTP, deadline, new_run_id, node, options, topo

from .test_kubernetes import core_api

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning"),
]


def pod_ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def test_a_start_period_does_not_delay_readiness(kubeconfig: str, k8s_images, tmp_path: Path) -> None:
    """A rollout (what transitions, restarts and scaling wait for) ends when the node answers,
    not after its start period: 120 s here, the node ready in a few."""
    b = KubernetesBackend(options(tmp_path, kubeconfig, ready_timeout=200, kubernetes_wait_rollout="true"))
    slow_start = replace(FAST_HTTP, interval=1, retries=3, start_period=120)
    try:
        started = time.monotonic()
        b.deploy(topo(node("web", healthcheck=slow_start)), deadline(200))
        took = time.monotonic() - started
        assert took < 60, f"the rollout waited {took:.0f}s: the start period delayed readiness"
        (pod,) = core_api(kubeconfig).list_namespaced_pod(b.namespace).items
        assert pod_ready(pod)
        spec = pod.spec.containers[0]
        assert not spec.readiness_probe.initial_delay_seconds and spec.startup_probe is None
    finally:
        b.teardown()


def _kubectl(kubeconfig: str, *args: str) -> subprocess.CompletedProcess[str]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    env = {"KUBECONFIG": kubeconfig, "PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run([kubectl, *args], capture_output=True, text=True, env=env, timeout=120)


def test_a_rendered_ingress_is_not_ready_without_cluster_dns(
    kubeconfig: str, k8s_images, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("BANNOU_INFRA", "true")
    run_id = new_run_id("k8r")
    opts = BackendOptions(run_id=run_id, workdir=tmp_path)
    topology = PresetLibrary().resolve("test-edge")
    path = tmp_path / "test-edge.yaml"
    text = KubernetesBackend.render(topology, opts)
    path.write_text(text)
    namespace = next(yaml.safe_load_all(text))["metadata"]["name"]
    core = core_api(kubeconfig)
    try:
        applied = _kubectl(kubeconfig, "apply", "-f", str(path))
        assert applied.returncode == 0, applied.stderr
        end = deadline(180)
        reason = None
        while reason is None:
            pods = {p.metadata.labels.get(LABEL_NODE): p for p in core.list_namespaced_pod(namespace).items}
            ingress, bannou = pods.get("ingress"), pods.get("bannou")
            if ingress is not None and bannou is not None and pod_ready(bannou):
                reason = next(
                    (
                        e.message
                        for e in core.list_namespaced_event(namespace).items
                        if e.reason == "Unhealthy"
                        and e.involved_object.name == ingress.metadata.name
                        and "not reached" in (e.message or "")
                    ),
                    None,
                )
            if reason is None:
                assert time.monotonic() < end, (
                    "no failed probe of the ingress while the node behind it cannot be resolved: "
                    + ", ".join(
                        f"{n}: ready={pod_ready(p)} {p.status.container_statuses}" for n, p in pods.items()
                    )
                    + f"; events: {[e.message for e in core.list_namespaced_event(namespace).items]}"
                )
                time.sleep(1)
        assert "HTTP 502" in reason, reason
        ingress = core.read_namespaced_pod(ingress.metadata.name, namespace)
        assert not pod_ready(ingress), "the ingress is Ready although it cannot reach bannou"
    finally:
        KubernetesBackend.clean(run_id=run_id, options=options(Path("."), kubeconfig))
